"""The source table: feasibility distances, the rule that keeps routing loop-free.

A source is (prefix, router id). Its feasibility distance FD is the best (seqno,
metric) this node has itself advertised for it: a newer seqno (modulo 2^16, RFC 8966
section 3.2.1) replaces it, a smaller metric with the same seqno lowers it, nothing
else moves it (section 3.5.1). An update (seqno, metric) from a neighbour is
feasible when it is a retraction, when we never advertised the source, or when it is
strictly better than FD: a newer seqno, or the same seqno and a smaller metric
(section 3.5.1). Since every node's FD only ever improves and a node selects only a
neighbour whose advertisement beats its own FD, following next hops strictly
improves FD, so no chain of next hops can come back to where it started.

An entry is kept for GC_TIME after our last advertisement of the source (RFC 8966
appendix B: 3 minutes), longer than any neighbour keeps a route it heard from us
(3.5 update intervals), so forgetting an FD can never let an old advertisement of
ours come back as a loop. The table is bounded: when full, the entry advertised
longest ago that is past GC_TIME goes (counted); if none is, the new source is
refused (counted) and the caller drops the route that needed it.
"""

from collections import Counter
from dataclasses import dataclass

from .metric import INFINITY

GC_TIME = 180.0
SEQNO_MOD = 1 << 16


def seqno_gt(a: int, b: int) -> bool:
    """a is newer than b (RFC 8966 section 3.2.1)."""
    return 0 < (a - b) % SEQNO_MOD < SEQNO_MOD // 2


def seqno_ge(a: int, b: int) -> bool:
    return a == b or seqno_gt(a, b)


def seqno_plus(a: int, n: int) -> int:
    return (a + n) % SEQNO_MOD


@dataclass(slots=True)
class Source:
    seqno: int
    metric: int
    advertised: float  # when we last advertised it with a finite metric


def better(seqno: int, metric: int, fd: Source) -> bool:
    # seqno_gt(seqno, fd.seqno), inlined: selection asks millions of times
    return 0 < (seqno - fd.seqno) % SEQNO_MOD < SEQNO_MOD // 2 or (
        seqno == fd.seqno and metric < fd.metric
    )


class SourceTable:
    def __init__(self, *, cap: int) -> None:
        self.cap = cap
        self.entries: dict[tuple[bytes, bytes], Source] = {}
        self.counters: Counter[str] = Counter()
        self.forgotten: list[bytes] = []  # prefixes of sources evicted, for `collect`

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, prefix: bytes, router_id: bytes) -> Source | None:
        return self.entries.get((prefix, router_id))

    def feasible(self, prefix: bytes, router_id: bytes, seqno: int, metric: int) -> bool:
        """The feasibility condition, in one place (RFC 8966 section 3.5.1)."""
        if metric >= INFINITY:
            return True
        fd = self.entries.get((prefix, router_id))
        return fd is None or better(seqno, metric, fd)

    def can_advertise(self, prefix: bytes, router_id: bytes, *, now: float) -> bool:
        """Is there, or can there be made, room to record an advertisement of this source?"""
        key = (prefix, router_id)
        if key in self.entries or len(self.entries) < self.cap:
            return True
        return self._evict(now=now)

    def advertised(
        self, prefix: bytes, router_id: bytes, seqno: int, metric: int, *, now: float
    ) -> bool:
        """We are sending (seqno, metric) for the source: FD improves (section 3.7.3).
        False if there is no room to record it: then it must not be sent."""
        if metric >= INFINITY:
            return True
        key = (prefix, router_id)
        fd = self.entries.get(key)
        if fd is None:
            if len(self.entries) >= self.cap and not self._evict(now=now):
                return False
            self.entries[key] = Source(seqno, metric, now)
            return True
        if better(seqno, metric, fd):
            fd.seqno, fd.metric = seqno, metric
        fd.advertised = now
        return True

    def _evict(self, *, now: float) -> bool:
        oldest = min(self.entries.items(), key=lambda kv: kv[1].advertised, default=None)
        if oldest is None or now - oldest[1].advertised <= GC_TIME:
            self.counters["route_sources_full"] += 1
            return False
        del self.entries[oldest[0]]
        self.forgotten.append(oldest[0][0])
        self.counters["route_sources_evicted"] += 1
        return True

    def collect(self, *, now: float) -> list[bytes]:
        """Forget sources not advertised for GC_TIME; the prefixes of those forgotten
        since the last call (here or by eviction), whose routes may be feasible now."""
        stale = [k for k, s in self.entries.items() if now - s.advertised > GC_TIME]
        for k in stale:
            del self.entries[k]
        forgotten, self.forgotten = self.forgotten + [k[0] for k in stale], []
        return forgotten
