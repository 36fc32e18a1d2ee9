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
