"""Which destinations housekeeping must look at this second, so it need not look at all.

Housekeeping (babel.py) does three things per route on time alone: a route whose
hold ran out is retracted (`expires`), a retracted one goes one hold later
(`expires + hold`), and a selected route about to expire is asked for again
(`expires - hold / 8`, once). It also reselects a destination while one of its
routes is still being smoothed (smoothed metric not yet its metric). Scanning every
route every second made a node's second O(destinations): at 1,000 nodes that was
most of the simulation's time, and a router with a large table pays it too.

The agenda keeps instead a heap of each route's next deadline (`deadline`), pushed
whenever a route's fields or its selection change, and a set of destinations being
smoothed. `due` pops what has come, re-queues a route whose deadline moved later
since (a refresh), and returns the destinations to visit, in the order the table
holds them (each has its creation `order`), so the engine does exactly what the
full scan did, in the same order: a visit with nothing due is a no-op, and every
route with something due has an entry at or before its deadline. A route records
the earliest entry it has queued (`queued`), so a route refreshed every update
interval keeps one entry rather than one per update.
"""

import heapq
from collections.abc import Mapping

from .metric import INFINITY, SNAP
from .sources import SourceTable
from .table import Destination, Route

NONE_QUEUED = float("inf")


def deadline(r: Route, *, selected: bool) -> float:
    """The first time at which housekeeping has something to do for `r` on time alone."""
    if r.refmetric < INFINITY:
        if selected and not r.refresh_asked:
            return r.expires - r.hold / 8
        return r.expires
    return r.expires + r.hold


class Agenda:
    def __init__(self, sources: SourceTable) -> None:
        self.sources = sources
        self._heap: list[tuple[float, int, bytes, bytes]] = []
        self._watch: set[bytes] = set()

    def __len__(self) -> int:
        return len(self._heap)

    def watch(self, prefix: bytes) -> None:
        """Visit this destination at the next housekeeping."""
        self._watch.add(prefix)

    def settling(self, prefix: bytes, r: Route) -> bool:
        """Can time alone still change what selection makes of `r`? Only while it is
        being smoothed and selection looks at it at all (finite, feasible): the smoothed
        value of any other route is brought up to date when it next counts (touch)."""
        metric = r.refmetric + r.cost
        return (
            metric < INFINITY
            and abs(r.smoothed - metric) >= SNAP  # closer: it snaps at the next step anyway
            and self.sources.feasible(prefix, r.router_id, r.seqno, r.refmetric)
        )

    def route(self, dest: Destination, r: Route) -> None:
        """`r` (a route of `dest`) or the selection changed: its deadline is queued."""
        t = deadline(r, selected=r is dest.selected)
        if t < r.queued:
            r.queued = t
            heapq.heappush(self._heap, (t, dest.order, dest.prefix, r.neighbour))
        if self.settling(dest.prefix, r):
            self._watch.add(dest.prefix)

    def due(self, destinations: Mapping[bytes, Destination], *, now: float) -> list[Destination]:
        """The destinations housekeeping visits now, in the table's order."""
        prefixes, self._watch = self._watch, set()
        heap = self._heap
        while heap and heap[0][0] <= now:
            t, order, prefix, key = heapq.heappop(heap)
            dest = destinations.get(prefix)
            if dest is None or dest.order != order:
                continue  # that destination went (and perhaps came back)
            r = dest.routes.get(key)
            if r is None:
                continue
            if r.queued == t:
                r.queued = NONE_QUEUED
            if deadline(r, selected=r is dest.selected) <= now:
                prefixes.add(prefix)
            else:
                self.route(dest, r)  # refreshed since: wait for the new deadline
        visit = [d for p in prefixes if (d := destinations.get(p)) is not None]
        visit.sort(key=lambda d: d.order)
        return visit
