"""The mediator: a node with sessions to both A and B introduces them to each other.

The mediator knows each peer's observed endpoint from its own link: where that peer's
latest authenticated packet came from (the shell's `observed(key)`, UDP paths only),
never what a peer claims. Consent is mutual: A's NAT_LOOKUP(B) says "I want to reach
B" and is kept as a wish for WISH_TTL; only when B has also looked A up (each lists the
other as a peer) does the mediator send NAT_INTRODUCE to both at the same moment, so
they punch at once. A lookup is answered with NAT_OBSERVED (the asker's own observed
endpoint: how it learns it is behind a NAT), and so is every new session.

Bounds: lookups per peer through a token bucket (LOOKUP_RATE, LOOKUP_BURST), wishes
per asker (MAX_WISHES_PER_PEER) and in all (MAX_WISHES), the oldest dropped first;
every refusal is counted.
"""

from collections import Counter
from collections.abc import Callable
from typing import NamedTuple

from tidewire.protocol.control.nat import NatIntroduce, NatLookup, NatMessage, NatObserved
from tidewire.protocol.link.ratelimiter import RateLimiter
from tidewire.protocol.types import Endpoint

# the peer's endpoint as our link sees it (its current UDP path), or None
Observed = Callable[[bytes], Endpoint | None]

WISH_TTL = 150.0  # s a lookup is remembered: longer than the askers' longest backoff (60 s)
LOOKUP_RATE = 1.0  # lookups a second per peer
LOOKUP_BURST = 8  # at once (a node looking up a few peers when its session comes up)
MAX_WISHES_PER_PEER = 16
MAX_WISHES = 1024
MAX_OUT = 256  # messages waiting for the shell


class Send(NamedTuple):
    """A control message for a peer."""

    key: bytes
    message: NatMessage


class Mediator:
    def __init__(self, *, observed: Observed) -> None:
        self.observed = observed
        self.wishes: dict[tuple[bytes, bytes], float] = {}  # (asker, target) -> expiry
        self.limit = RateLimiter(
            rate=LOOKUP_RATE,
            burst=LOOKUP_BURST,
            idle=LOOKUP_BURST / LOOKUP_RATE,
            max_entries=MAX_WISHES,
        )
        self.out: list[Send] = []
        self.counters: Counter[str] = Counter()

    def take(self) -> list[Send]:
        out, self.out = self.out, []
        return out

    def _send(self, key: bytes, msg: NatMessage) -> None:
        if len(self.out) >= MAX_OUT:
            self.counters["mediator_out_full"] += 1
            return
        self.out.append(Send(key, msg))

    def established(self, key: bytes) -> None:
        endpoint = self.observed(key)
        if endpoint is not None:
            self._send(key, NatObserved(endpoint))

    def lookup(self, asker: bytes, msg: NatLookup, *, now: float) -> None:
        if not self.limit.allow(asker.hex(), now=now):
            self.counters["lookups_rate_limited"] += 1
            return
        target = msg.key
        if target == asker:
            self.counters["lookups_self"] += 1
            return
        self.counters["lookups"] += 1
        self._expire(now)
        mine = self.observed(asker)
        if mine is not None:
            self._send(asker, NatObserved(mine))
        self._wish(asker, target, now=now)
        if self.wishes.get((target, asker), 0.0) <= now:
            self.counters["lookups_waiting"] += 1  # until the target looks the asker up too
            return
        theirs = self.observed(target)
        if mine is None or theirs is None:
            self.counters["introductions_no_endpoint"] += 1
            return
        self._send(asker, NatIntroduce(target, (theirs,)))
        self._send(target, NatIntroduce(asker, (mine,)))
        self.counters["introductions"] += 1

    def _wish(self, asker: bytes, target: bytes, *, now: float) -> None:
        pair = (asker, target)
        self.wishes.pop(pair, None)
        mine = [p for p in self.wishes if p[0] == asker]
        if len(mine) >= MAX_WISHES_PER_PEER:
            del self.wishes[mine[0]]
            self.counters["wishes_dropped"] += 1
        elif len(self.wishes) >= MAX_WISHES:
            del self.wishes[next(iter(self.wishes))]
            self.counters["wishes_dropped"] += 1
        self.wishes[pair] = now + WISH_TTL

    def _expire(self, now: float) -> None:
        while self.wishes:  # in order of their last refresh, so of expiry
            pair, until = next(iter(self.wishes.items()))
            if until > now:
                break
            del self.wishes[pair]

    def forget(self, key: bytes) -> None:
        for pair in [p for p in self.wishes if key in p]:
            del self.wishes[pair]
