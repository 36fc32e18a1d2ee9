"""The route table: what each neighbour told us per destination, and the choice.

A destination (a node key) has one route per neighbour that advertised it: the
neighbour's seqno and metric (refmetric), our cost to that neighbour, and when the
route expires (3.5 of the neighbour's update intervals after its last finite
update; RFC 8966 appendix B). An expired or retracted route has an infinite metric
and stays one more hold time, so that its retraction is still known, then goes.

Selection is one function (`select`, babeld's find_best_route and consider_route):
only feasible routes with a finite metric count (sources.py); among them the best
smoothed metric wins, but the current choice is replaced only when the challenger
is at least as good now and strictly better smoothed, so a route that is better for
a moment does not take over (hysteresis). A new route starts with a smoothed
metric of at least half of infinity, so it earns its place over some half-lives;
with nothing else selected it is taken at once.
"""

from dataclasses import dataclass, field

from .metric import INFINITY, smooth
from .sources import SourceTable


@dataclass(slots=True)
class Route:
    neighbour: bytes
    router_id: bytes
    seqno: int
    refmetric: int  # what the neighbour advertised
    cost: int  # our link cost to the neighbour
    expires: float  # finite until then; after, retracted
    hold: float  # the neighbour's hold time for its updates
    smoothed: float
    smoothed_time: float
    refresh_asked: bool = False
    queued: float = float("inf")  # the earliest deadline queued for it (agenda.py)

    @property
    def metric(self) -> int:  # add_metric, inlined: selection asks millions of times
        m = self.refmetric + self.cost
        return m if m < INFINITY else INFINITY

    def smoothed_metric(self, *, now: float, half_life: float) -> float:
        self.smoothed = smooth(
            self.smoothed, self.smoothed_time, self.metric, now=now, half_life=half_life
        )
        self.smoothed_time = max(now, self.smoothed_time)
        return self.smoothed

    def touch(self, *, now: float, half_life: float) -> None:
        """Bring the smoothed metric up to `now` before the metric changes."""
        self.smoothed_metric(now=now, half_life=half_life)


@dataclass(slots=True)
class Advertised:
    router_id: bytes
    seqno: int
    metric: int


@dataclass(slots=True)
class Destination:
    prefix: bytes
    last_heard: float
    routes: dict[bytes, Route] = field(default_factory=dict)  # by neighbour key
    selected: Route | None = None
    state: Advertised | None = None  # what the selected route was at the last selection
    order: int = 0  # when it was created, among the engine's destinations (agenda.py)


def select(
    dest: Destination, sources: SourceTable, *, now: float, half_life: float
) -> Route | None:
    """The route to use for `dest` now (RFC 8966 section 3.6, with babeld's hysteresis).

    A route is acceptable with a finite metric, unexpired, feasible (sources.py) and
    with room for its source; the best acceptable one by (smoothed metric, metric,
    neighbour) wins. Checks and ranking in one loop: housekeeping runs this for every
    destination every few seconds, and the calls were most of a large simulation's
    time. The checks keep their order (the source table's eviction, the one side
    effect, only when the rest hold)."""
    prefix = dest.prefix
    entries = sources.entries
    candidates: list[Route] = []
    best: Route | None = None
    best_rank: tuple[float, int, bytes] | None = None
    for r in dest.routes.values():
        metric = r.refmetric + r.cost
        if metric >= INFINITY or now >= r.expires:
            continue
        if not sources.feasible(prefix, r.router_id, r.seqno, r.refmetric):
            continue
        if (
            (prefix, r.router_id) not in entries
            and len(entries) >= sources.cap
            and not sources.can_advertise(prefix, r.router_id, now=now)  # may evict
        ):
            continue
        candidates.append(r)
        rank = (r.smoothed_metric(now=now, half_life=half_life), metric, r.neighbour)
        if best_rank is None or rank < best_rank:
            best, best_rank = r, rank
    if best is None or best_rank is None:
        return None
    current = dest.selected if dest.selected in candidates else None
    if current is None or best is current:
        return best
    if best_rank[1] <= current.metric and best_rank[0] < current.smoothed:
        return best
    return current
