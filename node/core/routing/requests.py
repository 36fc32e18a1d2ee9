"""Seqno requests in flight: ours (a route was lost or a better one is unfeasible)
and those we forward for a neighbour (RFC 8966 section 3.8).

One entry per source (prefix, router id): a request for a seqno at most as new as one
already pending is a duplicate and is neither sent nor forwarded again (3.8.1.2: a
node must not forward duplicates). An entry is resent after 2 s, then 4 and 8 s, and
dropped after three resends (appendix B); it is satisfied, and dropped, once the
selected route for the prefix has another router id or a seqno at least the one
asked for. The table is bounded; when full the oldest entry goes (counted).
"""

from collections import Counter
from dataclasses import dataclass

from .sources import seqno_ge

FIRST_TIMEOUT = 2.0
RESENDS = 3


@dataclass(slots=True)
class Pending:
    seqno: int
    hop_count: int
    targets: tuple[bytes, ...]
    requester: bytes | None  # the neighbour we forward for; None: our own
    created: float
    resend_at: float
    timeout: float
    resends_left: int


class Requests:
    def __init__(self, *, cap: int = 256) -> None:
        self.cap = cap
        self.pending: dict[tuple[bytes, bytes], Pending] = {}
        self.counters: Counter[str] = Counter()

    def add(
        self,
        prefix: bytes,
        router_id: bytes,
        *,
        seqno: int,
        hop_count: int,
        targets: tuple[bytes, ...],
        requester: bytes | None,
        now: float,
    ) -> bool:
        """Record a request; False if it duplicates one in flight (then send nothing)."""
        key = (prefix, router_id)
        old = self.pending.get(key)
        if old is not None and seqno_ge(old.seqno, seqno):
            self.counters["route_request_duplicate"] += 1
            return False
        if old is None and len(self.pending) >= self.cap:
            oldest = min(self.pending, key=lambda k: self.pending[k].created)
            del self.pending[oldest]
            self.counters["route_requests_evicted"] += 1
        self.pending[key] = Pending(
            seqno, hop_count, targets, requester, now, now + FIRST_TIMEOUT, FIRST_TIMEOUT, RESENDS
        )
        return True

    def satisfied(self, prefix: bytes, router_id: bytes, seqno: int) -> Pending | None:
        """A route to `prefix` from `router_id` with `seqno` is now selected."""
        for key in [k for k in self.pending if k[0] == prefix]:
            p = self.pending[key]
            if key[1] != router_id or seqno_ge(seqno, p.seqno):
                del self.pending[key]
                return p
        return None

    def due(self, *, now: float) -> list[tuple[bytes, bytes, Pending]]:
        """Entries to resend now (each at most RESENDS times, with doubling timeouts)."""
        out = []
        for key, p in list(self.pending.items()):
            if now < p.resend_at:
                continue
            if p.resends_left == 0:
                del self.pending[key]
                self.counters["route_request_timeout"] += 1
                continue
            p.resends_left -= 1
            p.timeout *= 2
            p.resend_at = now + p.timeout
            out.append((key[0], key[1], p))
        return out
