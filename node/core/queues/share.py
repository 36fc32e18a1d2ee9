"""The provider's queue in one direction: clients share a paced rate fairly, flows within each.

    enqueue -> client by key -> that client's FQ-CoDel (fq_codel.py, per inner flow)
    release / handle_timer -> deficit round robin over active clients -> shaper -> deliver

Behind the tunnel every client is one outer 5-tuple, so fairness among clients is done
on the key the data path schedules by (the client's public key): deficit round robin
(Shreedhar and Varghese, 1995; CAKE's per-host isolation, Hoiland-Jorgensen et al.
2018 section 3.2) with a quantum of one MTU, charged the bytes the shaper charges (size
plus per-packet overhead), so each backlogged client gets an equal share of the rate
however many flows it opens. Within a client, FQ-CoDel isolates its flows and keeps
their queues short. One TokenBucket (shaper.py) paces what leaves to `rate`; a client
may also have its own cap (`cap` for every client, or `set_cap`), a bucket of its own:
a capped client that must wait is set aside (`throttled`) until its bucket allows it.

Memory is bounded by `limit` bytes for the whole direction: past it, packets go from
the fattest client's fattest flow (fq_codel.FqCoDel.drop_fattest), counted in `drops`
and per client; enqueue never blocks and never refuses.

Items are opaque: `packet_of(item)` gives the packet bytes for the flow hash (out_queue
items are `(peer, packet)`, in_queue items the packet), and `with_packet(item, packet)`
rebuilds an item around its CE-marked packet; without `with_packet`, ECN is off and
CoDel drops every packet it would mark.

When nothing is queued and the buckets allow it, a packet is delivered at once from
`enqueue`: the queue costs an idle or unshaped link a few lookups per packet.

This class is the reference. dataplane/src/queue/ is the same queue in Rust (with a
standing queue 0.2 us a packet over a pass-through where this one costs 1.8, BENCHMARKS.md,
"The provider's queue natively"), `tidewire._dataplane.Share`, which
`share_class()` (__init__.py) picks when the module is built; `shape` ("pair": items are
`(peer, packet)`, "packet": items are packets) lets it read items without calling
`packet_of`, and is only recorded here. An exception from `deliver` or `with_packet`
propagates with the totals consistent (a packet whose marking raised counts as a drop).
"""

from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from tidewire.node.core.ecn import mark_ce

from . import codel
from .base import QueueBase
from .fq_codel import _IPV4_PLAIN, FLOWS, TCP, UDP, FlowHash, FqCoDel, flow_hash
from .shaper import TokenBucket

T = TypeVar("T")

MTU = 1500
QUANTUM = MTU  # bytes of deficit a client gets per round
LIMIT = 1 << 22  # bytes held per direction, all clients together
# The rate and each cap are paced by timer wake-ups that a busy host makes late by
# milliseconds; a lateness past a bucket's slack is rate lost for good. In the lab, on a
# loaded 2-core host, a 10 Mbit/s cap with 1 ms of slack delivered 85% of itself and with
# 10 ms 93% of what it should; 40 Mbit/s shared with 4 ms delivered 90-94%. So both may
# catch up 20 ms (at 40 Mbit/s 100 kB, one burst into a link faster than the rate)
BURST_TIME = 0.020

NO_DEBT = float("-inf")

Packet = bytes | bytearray | memoryview


class Client(FqCoDel[T]):
    """One client's queue: an FQ-CoDel over its flows, with its place on the round robin
    (deficit, active) and its cap."""

    __slots__ = ("active", "cap", "deficit", "key", "sent_bytes", "sent_packets")

    def __init__(self, key: bytes, cap: TokenBucket | None, **fq: Any) -> None:
        super().__init__(**fq)
        self.key = key
        self.deficit = 0
        self.active = False  # on the round robin (or throttled by its cap)
        self.cap = cap
        self.sent_bytes = 0
        self.sent_packets = 0

    def stats(self) -> dict[str, float | int]:
        return {
            "delay": self.sojourn,  # seconds the last packet sent had waited
            "backlog_bytes": self.backlog,
            "backlog_packets": self.packets,
            "drops": self.drops,
            "overlimit_drops": self.overlimit,
            "marks": self.marks,
            "sent_bytes": self.sent_bytes,
            "sent_packets": self.sent_packets,
            "cap": -1 if self.cap is None or self.cap.rate is None else self.cap.rate,  # B/s
        }


class Share(QueueBase[T]):
    def __init__(
        self,
        deliver: Callable[[T, float], None],
        *,
        packet_of: Callable[[T], Packet],
        with_packet: Callable[[T, bytes], T] | None,
        rate: float | None,
        seed: int,
        hash: FlowHash = flow_hash,
        per_packet_overhead: int = 0,
        cap: float | None = None,
        limit: int = LIMIT,
        mtu: int = MTU,
        quantum: int = QUANTUM,
        target: float = codel.TARGET,
        interval: float = codel.INTERVAL,
        shape: str | None = None,
    ) -> None:
        super().__init__(deliver)
        self.shape = shape  # the native class's hint ("pair" or "packet"); here the callables do
        self.packet_of = packet_of
        self.with_packet = with_packet
        self.bucket = TokenBucket(
            rate, per_packet_overhead=per_packet_overhead, mtu=mtu, burst_time=BURST_TIME
        )
        self.seed = seed
        self.hash = hash
        self._plain_hash = hash is flow_hash  # then enqueue inlines classify's common case
        self.overhead = per_packet_overhead
        self.cap = cap
        self.limit = limit
        self.mtu = mtu
        self.quantum = quantum
        self.target = target
        self.interval = interval
        self.clients: dict[bytes, Client[T]] = {}
        self.active: deque[Client[T]] = deque()
        self.throttled: list[Client[T]] = []
        self.backlog = 0  # bytes held, all clients
        self.overlimit = 0  # of drops: those the byte limit made
        self._now = float("-inf")  # the last time seen

    # -- configuration -----------------------------------------------------------

    @property
    def rate(self) -> float | None:
        """The pacer's rate in bytes per second (None: unlimited)."""
        return self.bucket.rate

    def set_rate(self, rate: float | None, *, now: float) -> None:
        self.bucket.set_rate(rate, now=now)

    def set_cap(self, key: bytes, rate: float | None, *, now: float) -> None:
        """Cap one client's rate (None: uncapped, but still one share among the others)."""
        client = self._client(key)
        if rate is None:
            client.cap = None
        elif client.cap is None:
            client.cap = self._cap_bucket(rate)
        else:
            client.cap.set_rate(rate, now=now)

    def forget(self, key: bytes) -> None:
        """A peer removed: its queued packets are dropped and its state let go."""
        client = self.clients.pop(key, None)
        if client is None:
            return
        self.backlog -= client.backlog
        self.drops += client.packets
        if client in self.active:
            self.active.remove(client)
        if client in self.throttled:
            self.throttled.remove(client)

    def _client(self, key: bytes) -> Client[T]:
        client = self.clients.get(key)
        if client is None:
            cap = None
            if self.cap is not None:
                cap = self._cap_bucket(self.cap)
            client = self.clients[key] = Client(
                key,
                cap,
                seed=self.seed,
                hash=self.hash,
                mark=None if self.with_packet is None else self._mark,
                quantum=self.mtu,
                limit=None,  # the direction's limit is enforced here, across clients
                target=self.target,
                interval=self.interval,
                mtu=self.mtu,
            )
        return client

    def _cap_bucket(self, rate: float) -> TokenBucket:
        return TokenBucket(
            rate, per_packet_overhead=self.overhead, mtu=self.mtu, burst_time=BURST_TIME
        )

    def _mark(self, item: T) -> T | None:
        packet = mark_ce(self.packet_of(item))
        if packet is None or self.with_packet is None:
            return None
        return self.with_packet(item, bytes(packet))

    # -- the packet path ---------------------------------------------------------

    def enqueue(self, item: T, key: bytes, size: int, now: float, /) -> None:
        """FqCoDel.enqueue with its classify's common case inlined (IPv4 without options
        and the default hash): a call fewer per packet."""
        client = self.clients.get(key)
        if client is None:
            client = self._client(key)
        if not self.active and not client.packets:
            bucket = self.bucket
            cap = client.cap
            if (bucket.rate is None or now >= bucket.next_at) and (
                cap is None or now >= cap.next_at
            ):
                bucket.consume(size, now)
                if cap is not None:
                    cap.consume(size, now)
                client.sojourn = 0.0
                client.sent_bytes += size
                client.sent_packets += 1
                self.deliver(item, now)
                return
        packet = self.packet_of(item)
        if self._plain_hash and len(packet) >= 24 and packet[0] == 0x45:
            fragment, proto, addresses, ports = _IPV4_PLAIN.unpack_from(packet)
            if proto in (TCP, UDP) and not fragment & 0x3FFF:
                proto = proto << 32 | ports
            index = hash((self.seed, addresses, proto)) % FLOWS
        else:
            index = client.classify(packet)
        client.add(index, item, size, now)
        self._now = now
        self.backlog += size
        if not client.active:
            client.active = True
            client.deficit = self.quantum
            self.active.append(client)
        if self.backlog > self.limit:
            self._overflow()

    def _overflow(self) -> None:
        while self.backlog > self.limit:
            fattest = max(self.clients.values(), key=lambda client: client.backlog)
            before = fattest.backlog
            dropped = fattest.drop_fattest()
            self.backlog -= before - fattest.backlog
            self.drops += dropped
            self.overlimit += dropped

    def _drain(self, now: float) -> None:
        """Deficit round robin until the pacer says wait or nothing is left. The pacer's
        arithmetic (TokenBucket.consume) and the totals are kept in locals for the batch
        and written back once: `deliver` must not call back into this queue.

        Within the client, the common case of FqCoDel.dequeue is inlined: spent flows go
        to the tail of old_flows with another quantum, and the packet at the head of the
        first flow with deficit left leaves if CoDel lets it (its sojourn under target,
        the first interval above it, or dropping but before drop_next). Anything else, a
        drop or mark due or an empty flow, goes to FqCoDel.dequeue."""
        self._now = now
        if self.throttled:
            self._wake(now)
        active = self.active
        if not active:
            return
        bucket = self.bucket
        next_at = bucket.next_at
        start = now - bucket.slack
        per_byte = bucket.per_byte
        overhead = self.overhead
        charge = bucket.per_packet_overhead
        quantum = self.quantum
        flow_quantum = self.mtu
        target = self.target
        interval = self.interval
        mtu = self.mtu
        deliver = self.deliver
        backlog = drops = 0  # bytes that leave (or are dropped) and drops in this batch
        try:
            while active:
                if now < next_at:  # unlimited: next_at never passes now (no slack, no cost)
                    return
                client = active[0]
                if client.deficit <= 0:
                    client.deficit += quantum
                    active.rotate(-1)
                    continue
                cap = client.cap
                if cap is not None and now < cap.next_at:
                    active.popleft()
                    self.throttled.append(client)
                    continue
                entry = None
                head = client.new_flows or client.old_flows
                while head:
                    flow = head[0]
                    if flow.deficit <= 0:
                        flow.deficit += flow_quantum
                        head.popleft()
                        client.old_flows.append(flow)
                        head = client.new_flows or client.old_flows
                        continue
                    queue = flow.packets
                    if not queue:
                        break
                    entry = queue[0]
                    size = entry[1]
                    sojourn = now - entry[0]
                    state = flow.codel
                    above = state.first_above_time
                    if sojourn < target or client.backlog - size <= mtu:
                        state.first_above_time = 0.0
                        state.dropping = False
                    elif above == 0.0:
                        state.first_above_time = now + interval
                        state.dropping = False
                    elif now <= above:
                        state.dropping = False
                    elif not state.dropping or now >= state.drop_next:
                        entry = None  # a drop or a mark is due
                        break
                    queue.popleft()
                    flow.bytes -= size
                    flow.deficit -= size
                    client.backlog -= size
                    client.packets -= 1
                    client.sojourn = sojourn
                    backlog += size
                    break
                if entry is None:
                    held, queued = client.backlog, client.packets
                    try:
                        entry = client.dequeue(now)
                    except BaseException:  # from with_packet: the totals still add up
                        backlog += held - client.backlog
                        drops += queued - client.packets  # the packet it was marking is lost
                        raise
                    backlog += held - client.backlog
                    if entry is None:
                        drops += queued - client.packets
                        active.popleft()
                        client.active = False
                        continue
                    drops += queued - client.packets - 1
                    size = entry[1]
                client.deficit -= size + overhead
                next_at = (next_at if next_at > start else start) + (size + charge) * per_byte
                if cap is not None:
                    cap.consume(size, now)
                client.sent_bytes += size
                client.sent_packets += 1
                deliver(entry[2], now)
                if client.deficit <= 0 and now >= next_at:  # what the next round does first
                    client.deficit += quantum
                    active.rotate(-1)
        finally:
            bucket.next_at = next_at
            self.backlog -= backlog
            self.drops += drops

    def _wake(self, now: float) -> None:
        waiting = []
        for client in self.throttled:
            cap = client.cap
            if cap is None or now >= cap.next_at:
                self.active.append(client)
            else:
                waiting.append(client)
        self.throttled = waiting

    def release(self, *, now: float) -> None:
        if self.active or self.throttled:
            self._drain(now)

    def get_timer(self) -> float | None:
        bucket = self.bucket
        paced = bucket.next_at if bucket.rate is not None else float("-inf")
        if self.active:
            return max(paced, self._now)
        if self.throttled:
            # a client whose cap was lifted while it waited is due at once
            wake = min(NO_DEBT if c.cap is None else c.cap.next_at for c in self.throttled)
            return max(paced, wake)
        return None

    def handle_timer(self, *, now: float) -> None:
        if self.active or self.throttled:
            self._drain(now)

    def __len__(self) -> int:
        return sum(client.packets for client in self.clients.values())

    # -- status and metrics ------------------------------------------------------

    def client_stats(self) -> dict[bytes, dict[str, float | int]]:
        """Per client key: delay, backlog, drops, marks, bytes sent, cap."""
        return {key: client.stats() for key, client in self.clients.items()}

    def stats(self) -> dict[str, float | int]:
        return {
            "rate": -1 if self.bucket.rate is None else self.bucket.rate,
            "backlog_bytes": self.backlog,
            "backlog_packets": len(self),
            "drops": self.drops,
            "overlimit_drops": self.overlimit,
            "marks": sum(client.marks for client in self.clients.values()),
            "clients": len(self.clients),
        }
