"""Which destinations housekeeping must look at this second, so it need not look at all.

Housekeeping (babel.py) does three things per route on time alone: a route whose
hold ran out is retracted (`expires`), a retracted one goes one hold later
(`expires + hold`), and a selected route about to expire is asked for again
(`expires - hold / 8`, once). It also reselects a destination while smoothing can
still change its choice. Scanning every route every second made a node's second
O(destinations): at 1,000 nodes that was most of the simulation's time, and a
router with a large table pays it too.

The agenda keeps instead a heap of each route's next deadline (`deadline`), pushed
whenever a route's fields or its selection change, and the set of destinations
whose selection time alone can still change (`contested`: another feasible route at
most as dear as the selected one, not a settled tie; selection's hysteresis switches
only to such a route). `due` pops what has come, re-queues a route whose deadline
moved later since (a refresh), and returns the destinations to visit in the order
the table holds them (each has its creation `order`), as the full scan did. A visit
with nothing due is a no-op, every route with something due has an entry at or
before its deadline, and a reselection skipped for an uncontested destination
would have chosen the same route: on 30- and 60-node runs with a cut and a repair,
every route, choice, counter and message is the same as with the full scan, second
by second. A route records the earliest entry it has queued (`queued`), so a route
refreshed every update interval keeps one entry rather than one per update.
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

    def watching(self, prefix: bytes) -> bool:
        return prefix in self._watch

    def contested(self, dest: Destination) -> bool:
        """Can time alone still change the selection for `dest`? Selection (table.py)
        replaces the selected route only with one at least as good now and better
        smoothed, so only while another feasible route has a metric at most the
        selected one's, and they are not a settled tie. Smoothed values within SNAP of
        the metric are the metric at the next step."""
        sel = dest.selected
        best = sel.metric if sel is not None else INFINITY - 1
        sel_settled = sel is not None and abs(sel.smoothed - best) < SNAP
        for r in dest.routes.values():
            metric = r.refmetric + r.cost
            if r is sel or metric > best:
                continue
            if metric == best and sel_settled and abs(r.smoothed - metric) < SNAP:
                continue  # a settled tie: neither replaces the other
            if self.sources.feasible(dest.prefix, r.router_id, r.seqno, r.refmetric):
                return True
        return False

    def check(self, dest: Destination) -> None:
        """A route of `dest` changed: visit it while time can change its selection."""
        if self.contested(dest):
            self._watch.add(dest.prefix)

    def queue(self, dest: Destination, r: Route) -> None:
        """`r` (a route of `dest`) or the selection changed: its deadline is queued."""
        t = deadline(r, selected=r is dest.selected)
        if t < r.queued:
            r.queued = t
            heapq.heappush(self._heap, (t, dest.order, dest.prefix, r.neighbour))

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
                self.queue(dest, r)  # refreshed since: wait for the new deadline
        visit = [d for p in prefixes if (d := destinations.get(p)) is not None]
        visit.sort(key=lambda d: d.order)
        return visit
