"""Route selection (node/core/routing/table.py `select`): babeld's hysteresis, that a
challenger replaces the selected route only when it is at least as good now and
strictly better smoothed; and the acceptability checks it makes in one loop."""

from tidewire.node.core.routing.metric import INFINITY
from tidewire.node.core.routing.sources import SourceTable
from tidewire.node.core.routing.table import Destination, Route, select

PREFIX, ORIGIN = b"D" * 32, b"O" * 32
HALF_LIFE = 4.0


def route(neighbour: bytes, *, refmetric: int, smoothed: float, expires: float = 100.0) -> Route:
    return Route(
        neighbour=neighbour,
        router_id=ORIGIN,
        seqno=1,
        refmetric=refmetric,
        cost=0,
        expires=expires,
        hold=10.0,
        smoothed=smoothed,
        smoothed_time=0.0,
    )


def choose(current: Route, challenger: Route) -> Route | None:
    dest = Destination(PREFIX, 0.0, {r.neighbour: r for r in (current, challenger)})
    dest.selected = current
    return select(dest, SourceTable(cap=16), now=0.0, half_life=HALF_LIFE)


def test_a_challenger_better_now_but_not_smoothed_does_not_take_over() -> None:
    a = route(b"A" * 32, refmetric=300, smoothed=300.0)
    b = route(b"B" * 32, refmetric=280, smoothed=INFINITY / 2)  # new: earns its place
    assert choose(a, b) is a


def test_a_challenger_better_smoothed_but_worse_now_does_not_take_over() -> None:
    a = route(b"A" * 32, refmetric=300, smoothed=300.0)
    b = route(b"B" * 32, refmetric=320, smoothed=250.0)
    assert choose(a, b) is a


def test_a_challenger_better_both_now_and_smoothed_takes_over() -> None:
    a = route(b"A" * 32, refmetric=300, smoothed=300.0)
    b = route(b"B" * 32, refmetric=280, smoothed=290.0)
    assert choose(a, b) is b


def test_only_acceptable_routes_count() -> None:
    a = route(b"A" * 32, refmetric=300, smoothed=300.0, expires=0.0)  # expired
    b = route(b"B" * 32, refmetric=INFINITY, smoothed=INFINITY)  # retracted
    assert choose(a, b) is None
    fresh = route(b"C" * 32, refmetric=400, smoothed=INFINITY / 2)
    assert choose(a, fresh) is fresh  # nothing else selectable: taken at once
    sources = SourceTable(cap=16)
    sources.advertised(PREFIX, ORIGIN, 1, 350, now=0.0)  # our feasibility distance: 350
    dest = Destination(PREFIX, 0.0, {fresh.neighbour: fresh})
    assert select(dest, sources, now=0.0, half_life=HALF_LIFE) is None  # 400 is not feasible
