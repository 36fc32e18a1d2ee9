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


def acceptable(prefix: bytes, route: Route, sources: SourceTable, *, now: float) -> bool:
    return (
        route.metric < INFINITY
        and now < route.expires
        and sources.feasible(prefix, route.router_id, route.seqno, route.refmetric)
        and sources.can_advertise(prefix, route.router_id, now=now)
    )


def select(
    dest: Destination, sources: SourceTable, *, now: float, half_life: float
) -> Route | None:
    """The route to use for `dest` now (RFC 8966 section 3.6, with babeld's hysteresis)."""
    candidates = [r for r in dest.routes.values() if acceptable(dest.prefix, r, sources, now=now)]
    if not candidates:
        return None

    def rank(r: Route) -> tuple[float, int, bytes]:
        return (r.smoothed_metric(now=now, half_life=half_life), r.metric, r.neighbour)

    best = min(candidates, key=rank)
    current = dest.selected if dest.selected in candidates else None
    if current is None or best is current:
        return best
    if best.metric <= current.metric and rank(best)[0] < rank(current)[0]:
        return best
    return current
