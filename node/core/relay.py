"""What a node does with relay frames (docs/protocol/relay.md), sans-IO.

Every node is an end: a frame whose destination is our key is delivered, its datagram
handed to the link as if it had come on a path of its own, `Path("relay", ...)` whose
address names the neighbour it came through and the end that sealed it (`address`).
A node with `[relay] enabled = true` also forwards: the next hop for a destination key
is a direct peer with that key, else the overlay route's next hop (node/routing.py),
so paths of several relays follow Babel's routes. A frame for a destination with
neither is dropped and counted (`no_route`), as is one that would go back where it came
from, one whose ttl ran out, and one whose IPv6 source is not its neighbour's overlay
address.

The frame's source key is believed only from a trusted neighbour (a peer configured
`neighbour = true`, as for the route exchange); from anyone else it is rewritten to the
key of the link it came on, so a client cannot pose as another end to dodge its caps.

Forwarding is counted per pair of ends (the unordered pair of source and destination
keys: both directions of one end-to-end session are one pair) and held to a per-pair
token bucket (`pair_rate`, bytes per second, with a burst of BURST_SECONDS of it) and a
byte cap (`pair_cap`) over the pair's life in the table. The table holds at most
`max_pairs` pairs; when full, a pair idle for PAIR_IDLE seconds makes room, otherwise a
new pair is refused (`pairs_full`) rather than evicting one in use, which would reset
its cap.

A relay with `require_receipts` is paid like a provider (docs/protocol/relay.md,
"Paying a relay"): each pair has a payer, the end that opened it (sent its first frame)
when that end is the neighbour whose link carried the frame in; a pair opened through
another relay for an end that is not our peer is free here (the first relay bills).
An opener that has no paid session (never said hello) gives way to an end of the pair
that has one, as soon as a frame from or to it crosses: after a relay restarts, the
exit's answer may reach it before the client's next frame and open the pair first.
Every frame of a paid pair is charged to its payer when it leaves (`charge(payer,
bytes, up)`: up away from the payer, down towards it), which is the provider's own
credit gate (node/accounting.py `relayed_for`); a frame the payer's credit refuses is
dropped and counted (`unpaid`).

The rate paces, it does not police: a frame the bucket cannot pay for now waits in the
pair's queue (one FIFO per direction, released in turn, so the ACKs of one direction
do not wait behind the data of the other) until `handle_timer` finds the tokens for it;
`take_released` hands the shell what left. Only a frame that finds its pair's queue
full (QUEUE_TIME of the rate, at least MIN_QUEUE bytes) or every pair's queues together
at TOTAL_QUEUE is dropped (`rate`, `queue_full`). A policer dropped 10-17% of a TCP
download's frames at 20 Mbit/s, which the end-to-end receipts then saw as over-billing
(the exit bills what it sent, the client signs for what arrived; docs/protocol/relay.md,
"Drops and receipts"); a queue of 50 ms turns most of that into delay (under 1%
dropped in the lab once what the timer lets go leaves at that wake-up, DataPath's
`after_timers`; 5-14% while it waited for the next read).
"""

import base64
import binascii
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from tidewire.protocol.control import relay as wire
from tidewire.protocol.keys import encode_key
from tidewire.protocol.types import Endpoint

PAIR_IDLE = 600.0  # seconds without a frame before a pair may give its slot to a new one
BURST_SECONDS = 0.01  # the bucket's depth, in seconds of the pair rate...
MIN_BURST = 64 * 1024  # ...and at least this many bytes (a TCP window's opening flight)
QUEUE_TIME = 0.05  # s of the pair rate a pair's queues hold: delay a TCP tolerates, not loss
MIN_QUEUE = 64 * 1024  # ...and at least this many bytes
TOTAL_QUEUE = 4 * 1024 * 1024  # bytes held over every pair (a router's memory, not per pair)


@dataclass
class RelayConfig:
    """[relay] (node/config/relay.py): forwarding on or off, and the per-pair limits."""

    enabled: bool = False
    pair_rate: int | None = 50_000_000 // 8  # bytes per second; None is unlimited
    pair_cap: int | None = 10 * 10**9  # bytes per pair; None is unlimited
    max_pairs: int = 256
    require_receipts: bool = False  # paid like a provider: invoices, receipts, credit
    price: int = 0  # micro-units of the token per GiB relayed, as [exit] price
    where: dict[str, tuple[int | None, str]] = field(default_factory=dict)


class Deliver(NamedTuple):
    """A frame for us: its datagram goes to the link, on the relayed path `address`."""

    address: Endpoint
    datagram: bytes


class Forward(NamedTuple):
    """A frame for another end: seal `packet` for the neighbour `next_hop` and send it."""

    next_hop: bytes
    packet: bytes


# -- relayed paths' addresses: the neighbour the datagrams go through, and the far end -----


def encode(key: bytes) -> str:
    """A key in base64url without padding (43 characters), as relay:// endpoints write it."""
    return base64.urlsafe_b64encode(key).decode("ascii").rstrip("=")


def decode(text: str) -> bytes | None:
    """A key from base64url (with or without padding) or standard base64; None if not one."""
    text = text.strip().rstrip("=")
    if len(text) != 43:
        return None
    try:
        raw = base64.b64decode(text.replace("-", "+").replace("_", "/") + "=", validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == wire.KEY_SIZE else None


def address(via: bytes, end: bytes) -> Endpoint:
    """The address of a relayed path: "VIA.END" (base64url keys), port 0. No ":" in it, so
    the link's per-source handshake limit keys it as it is."""
    return f"{encode(via)}.{encode(end)}", 0


def keys_of(host: str) -> tuple[bytes, bytes] | None:
    """(via, end) of a relayed path's address, or None if it is not one."""
    via, dot, end = host.partition(".")
    a, b = decode(via), decode(end)
    if not dot or a is None or b is None:
        return None
    return a, b


# -- the relay's per-pair accounting ------------------------------------------------------


class Pair:
    __slots__ = (
        "bytes",
        "drops",
        "frames",
        "held",
        "last",
        "payer",
        "queues",
        "refilled",
        "tokens",
        "turn",
    )

    def __init__(self, *, tokens: float, now: float, payer: bytes | None = None) -> None:
        self.payer = payer  # the end charged for both directions (require_receipts)
        self.frames = 0
        self.bytes = 0
        self.drops: Counter[str] = Counter()
        self.tokens = tokens
        self.refilled = now
        self.last = now
        self.held = 0  # bytes waiting in the two queues
        # frames waiting for tokens, towards the lower key of the pair and the higher
        self.queues: tuple[deque[Forward], deque[Forward]] = (deque(), deque())
        self.turn = 0  # the queue whose head leaves next when both hold frames


class Relay:
    def __init__(
        self,
        *,
        public_key: bytes,
        local_overlay: bytes,
        config: RelayConfig,
        next_hop: Callable[[bytes], bytes | None],
        trusted: Callable[[bytes], bool],
        overlay_of: Callable[[bytes], bytes],
        charge: Callable[[bytes, int, bool], bool] | None = None,
        paying: Callable[[bytes], bool] = lambda key: False,
    ) -> None:
        self.public_key = public_key
        self.charge = charge  # (payer, bytes, up) -> may it leave? (require_receipts)
        self.paying = paying  # has this peer a paid session with us (said hello)?
        self.local_overlay = local_overlay
        self.config = config
        self.next_hop = next_hop  # destination key -> neighbour key, or None
        self.trusted = trusted  # may this neighbour speak for a frame's source?
        self.overlay_of = overlay_of
        self._set_limits(config.pair_rate)
        self.pairs: OrderedDict[tuple[bytes, bytes], Pair] = OrderedDict()
        self.waiting: dict[tuple[bytes, bytes], Pair] = {}  # pairs with frames queued
        self.held = 0  # bytes queued over every pair
        self.released: list[Forward] = []  # what handle_timer let go, for take_released
        # delivered, delivered_bytes, forwarded, forwarded_bytes, queued, wrapped
        self.counters: Counter[str] = Counter()
        self.drops: Counter[str] = Counter()  # relay_<reason>, all pairs together

    def reconfigure(self, config: RelayConfig, *, now: float) -> None:
        """A reload's [relay] limits (`enabled` and `require_receipts` need a restart):
        each pair's bucket is filled at the old rate up to `now`, then holds at most the
        new burst; a lower cap or max_pairs applies from the next frame, and frames that
        wait for tokens leave at the new rate (at once when it is unlimited)."""
        for pair in self.pairs.values():
            self._pay(pair, 0, now=now)
        self.config = config
        self._set_limits(config.pair_rate)
        for pair in self.pairs.values():
            pair.tokens = min(pair.tokens, self.burst)
            pair.refilled = now
        self.handle_timer(now=now)

    def _set_limits(self, rate: int | None) -> None:
        """A pair's bucket depth and queue, in bytes, for the pair rate (None: no limit)."""
        self.burst = float("inf") if rate is None else max(rate * BURST_SECONDS, MIN_BURST)
        self.queue_limit = float("inf") if rate is None else max(rate * QUEUE_TIME, MIN_QUEUE)

    def wrap(self, via: bytes, end: bytes, datagram: bytes) -> bytes:
        """The frame of one of our own end-to-end datagrams, to seal for `via`."""
        self.counters["wrapped"] += 1
        return wire.build(
            self.local_overlay,
            self.overlay_of(via),
            ttl=wire.DEFAULT_TTL,
            destination=end,
            source=self.public_key,
            datagram=datagram,
        )

    def receive(self, neighbour: bytes, packet: bytes, *, now: float) -> Deliver | Forward | None:
        """A frame from a neighbour's link: ours to deliver, one to forward, or None (a
        counted drop)."""
        frame = wire.parse(packet)
        if frame is None:
            self._drop("malformed")
            return None
        if frame.source_overlay != self.overlay_of(neighbour):
            self._drop("wrong_source")
            return None
        if frame.destination == self.public_key:
            self.counters["delivered"] += 1
            self.counters["delivered_bytes"] += len(frame.datagram)
            return Deliver(address(neighbour, frame.source), frame.datagram)
        if not self.config.enabled:
            self._drop("disabled")
            return None
        if frame.ttl <= 1:
            self._drop("ttl")
            return None
        source = frame.source if self.trusted(neighbour) else neighbour
        hop = self.next_hop(frame.destination)
        if hop is None:
            self._drop("no_route")
            return None
        if hop == neighbour or frame.destination == source:
            self._drop("back_to_sender")
            return None
        size = len(frame.datagram)
        key = (source, frame.destination)
        if key[1] < key[0]:
            key = (frame.destination, source)
        payer = source if self.config.require_receipts and source == neighbour else None
        pair = self._pair(key, now=now, payer=payer)
        if pair is None:
            self._drop("pairs_full")
            return None
        if self.charge is not None and (pair.payer is None or not self.paying(pair.payer)):
            # no payer, or one that never said hello: a direct end of this frame that pays
            for end in (payer, hop if hop == frame.destination else None):
                if end is not None and self.paying(end):
                    pair.payer = end
                    break
        cap = self.config.pair_cap
        if cap is not None and pair.bytes + pair.held + size > cap:
            self._refuse(pair, "cap")
            return None
        out = Forward(
            hop,
            wire.build(
                self.local_overlay,
                self.overlay_of(hop),
                ttl=frame.ttl - 1,
                destination=frame.destination,
                source=source,
                datagram=frame.datagram,
            ),
        )
        if not pair.held and self._pay(pair, size, now=now):
            return out if self._leave(pair, out, size) else None
        if pair.held + size > self.queue_limit:
            self._refuse(pair, "rate")
            return None
        if self.held + size > TOTAL_QUEUE:
            self._refuse(pair, "queue_full")
            return None
        pair.queues[frame.destination != key[0]].append(out)
        pair.held += size
        self.held += size
        self.waiting[key] = pair
        self.counters["queued"] += 1
        return None

    def _refuse(self, pair: Pair, reason: str) -> None:
        """A frame the pair's limits refuse, counted per pair and in total."""
        pair.drops[reason] += 1
        self._drop(reason)

    def _leave(self, pair: Pair, out: Forward, size: int) -> bool:
        """A frame the pair's rate let go: charged to the pair's payer, if it has one, and
        counted; False if the payer's credit refuses it (a counted drop)."""
        payer, charge = pair.payer, self.charge
        if (
            payer is not None
            and charge is not None
            and not charge(payer, size, out.next_hop != payer)
        ):
            self._refuse(pair, "unpaid")
            return False
        self._count(pair, size)
        return True

    def _count(self, pair: Pair, size: int) -> None:
        pair.frames += 1
        pair.bytes += size
        self.counters["forwarded"] += 1
        self.counters["forwarded_bytes"] += size

    def _drop(self, reason: str) -> None:
        self.drops["relay_" + reason] += 1

    def _pair(self, key: tuple[bytes, bytes], *, now: float, payer: bytes | None) -> Pair | None:
        pair = self.pairs.get(key)
        if pair is not None:
            self.pairs.move_to_end(key)
            pair.last = now
            return pair
        if len(self.pairs) >= self.config.max_pairs:
            oldest_key, oldest = next(iter(self.pairs.items()))
            if now - oldest.last < PAIR_IDLE or oldest.held:
                return None
            del self.pairs[oldest_key]
            self.counters["pairs_forgotten"] += 1
        pair = self.pairs[key] = Pair(tokens=self.burst, now=now, payer=payer)
        return pair

    def _pay(self, pair: Pair, size: int, *, now: float) -> bool:
        """Take `size` bytes of tokens from the pair's bucket if it holds them now."""
        rate = self.config.pair_rate
        if rate is None:
            return True
        if now > pair.refilled:
            pair.tokens = min(self.burst, pair.tokens + (now - pair.refilled) * rate)
            pair.refilled = now
        if pair.tokens < size:
            return False
        pair.tokens -= size
        return True

    # -- the pacing queues' timer -------------------------------------------------------

    @staticmethod
    def _head(pair: Pair) -> deque[Forward]:
        """The queue whose head leaves next: its turn, unless it is empty."""
        q = pair.queues[pair.turn]
        return q if q else pair.queues[1 - pair.turn]

    def get_timer(self) -> float | None:
        """When the earliest waiting frame's tokens are there."""
        rate = self.config.pair_rate
        if not self.waiting or rate is None:  # nothing waits for an unlimited rate
            return None
        return min(
            p.refilled + max(0.0, _size(self._head(p)[0]) - p.tokens) / rate
            for p in self.waiting.values()
        )

    def handle_timer(self, *, now: float) -> None:
        for key, pair in list(self.waiting.items()):
            while pair.held:
                q = self._head(pair)
                size = _size(q[0])
                if not self._pay(pair, size, now=now):
                    break
                out = q.popleft()
                pair.turn = 1 - pair.turn
                pair.held -= size
                self.held -= size
                if self._leave(pair, out, size):
                    self.released.append(out)
            if not pair.held:
                del self.waiting[key]

    def take_released(self) -> list[Forward]:
        out, self.released = self.released, []
        return out

    def status(self) -> list[dict[str, Any]]:
        """Per pair: the two ends (base64, as status shows keys), frames and bytes
        forwarded, bytes queued, drops by reason."""
        return [
            {
                "ends": [encode_key(a), encode_key(b)],
                "frames": p.frames,
                "bytes": p.bytes,
                "queued": p.held,
                "drops": dict(p.drops),
                "payer": None if p.payer is None else encode_key(p.payer),
            }
            for (a, b), p in self.pairs.items()
        ]


def _size(out: Forward) -> int:
    """The end-to-end datagram's bytes in a forwarded frame (what the rate counts)."""
    return len(out.packet) - wire.HEADER_SIZE
