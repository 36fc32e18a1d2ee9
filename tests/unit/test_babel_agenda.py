"""Housekeeping visits only the destinations its agenda names (node/core/routing/agenda.py).

The full scan it replaced acted on a destination when one of its routes had run out
its hold (retract), its hold twice (forget), was selected and near expiry (ask again)
or was still being smoothed, or when it had no route left. On a random network with
a link cut and restored, every housekeeping of every node is checked: each
destination the full scan would have acted on is in the agenda's visit, and in the
quiet network at the end a second visits few destinations, not all of them.
"""

import random
from collections.abc import Mapping

from tidewire.node.core.routing.agenda import Agenda
from tidewire.node.core.routing.metric import INFINITY
from tidewire.node.core.routing.table import Destination, Route

from .babel_sim import Net


def acts(d: Destination, r: Route, now: float) -> bool:
    return (
        now >= r.expires + r.hold
        or (r.refmetric < INFINITY and now >= r.expires)
        or (r is d.selected and not r.refresh_asked and now >= r.expires - r.hold / 8)
    )


def test_agenda_names_every_destination_the_full_scan_would_act_on() -> None:
    rnd = random.Random(5)
    net = Net(14, seed=5)
    edges = {(rnd.randrange(i), i) for i in range(1, 14)}
    while len(edges) < 22:
        a, b = sorted(rnd.sample(range(14), 2))
        edges.add((a, b))
    for a, b in sorted(edges):
        net.connect(a, b, rnd.choice([0.002, 0.010, 0.040, 0.080]))
    acted = visited = scanned = 0

    def checked(agenda: Agenda) -> None:
        due = agenda.due

        def visit(destinations: Mapping[bytes, Destination], *, now: float) -> list[Destination]:
            nonlocal acted, visited, scanned
            must = {
                p
                for p, d in destinations.items()
                if not d.routes
                or agenda.contested(d)
                or any(acts(d, r, now) for r in d.routes.values())
            }
            got = due(destinations, now=now)
            missing = must - {d.prefix for d in got}
            assert not missing, f"t={now}: the agenda missed {len(missing)} destinations"
            acted += len(must)
            visited += len(got)
            scanned += len(destinations)
            return got

        agenda.due = visit  # type: ignore[method-assign]

    for node in net.nodes.values():
        checked(node.agenda)
    cut = sorted(edges)[3]
    net.run(150.0)
    net.link(*cut).up = False
    net.run(250.0)
    net.link(*cut).up = True
    net.run(400.0)
    assert acted > 1000  # expiries, refreshes and smoothing all happened, and were named
    quiet = visited
    net.run(460.0)
    # a quiet minute: a few refreshes, not every destination every second
    assert visited - quiet < (scanned / 460) * 60 / 10


class FullScan(Agenda):
    """Housekeeping as before the agenda: every destination, in table order, reselected
    where any route is still being smoothed."""

    def due(self, destinations: Mapping[bytes, Destination], *, now: float) -> list[Destination]:
        return list(destinations.values())

    def contested(self, dest: Destination) -> bool:
        return any(r.smoothed != r.metric for r in dest.routes.values())


def full_scan(net: Net) -> None:
    """Make every engine of `net` work as before the agenda (and run selection on every
    update, the quiet refresh too)."""
    for node in net.nodes.values():
        node.agenda = FullScan(node.sources)
        node._refreshed = lambda *args, **kwargs: False  # type: ignore[method-assign]


def history(seed: int, *, reference: bool) -> list[object]:
    rnd = random.Random(seed)
    n = 16
    net = Net(n, seed=seed)
    if reference:
        full_scan(net)
    edges = {(rnd.randrange(i), i) for i in range(1, n)}
    while len(edges) < 2 * n - 1:
        a, b = sorted(rnd.sample(range(n), 2))
        edges.add((a, b))
    for a, b in sorted(edges):
        net.connect(a, b, rnd.choice([0.002, 0.005, 0.010, 0.020, 0.040, 0.080]))
    cut = sorted(edges)[2]
    seen: list[object] = []
    for t in range(1, 221):
        net.run(float(t))
        if t == 100:
            net.link(*cut).up = False
        if t == 160:
            net.link(*cut).up = True
        state = {
            k: {
                p: (d.selected and (d.selected.neighbour, d.selected.metric))
                for p, d in b.destinations.items()
            }
            for k, b in net.nodes.items()
        }
        seen.append((t, net.delivered, state))
    return seen


def test_the_agenda_and_the_quiet_refresh_choose_what_the_full_scan_chose() -> None:
    # every second: the same messages, and every node's choice and metric per destination
    # (seed 6 has an update repeating a route in a destination still being contested)
    assert history(6, reference=False) == history(6, reference=True)
