"""Seqno requests, the engine's half (RFC 8966 section 3.8; the table is requests.py).

A node asks for a new seqno when it loses a route with no feasible alternative (to
every neighbour, for FD.seqno + 1) and when a neighbour offers a better route that
is unfeasible (to that neighbour). A request for our own key bumps our seqno; one
for a route we have with that seqno or newer (or another router id) is answered with
it; anything else is forwarded, hop count less one, to the selected route's
neighbour or else the best other one with the source, never back to the requester,
and duplicates of one in flight are not forwarded again.
"""

from collections import Counter

from tidewire.protocol.control import routes as wire

from .announce import Announcer
from .metric import INFINITY
from .neighbours import Neighbour
from .requests import Requests
from .sources import seqno_ge, seqno_gt, seqno_plus
from .table import Advertised, Destination

SEQNO_FAR = 100  # a seqno this far behind our FD: a source that restarted; let it expire


class SeqnoRequester(Announcer):
    """The seqno-request half of `Babel`; the attributes are the engine's."""

    requests: Requests
    counters: Counter[str]
    hop_count: int

    def _unfeasible(
        self, dest: Destination, n: Neighbour, e: wire.UpdateEntry, *, now: float
    ) -> None:
        """An unfeasible update better than what we use: ask its origin for a new seqno."""
        fd = self.sources.get(e.prefix, e.router_id)
        if fd is None or (fd.seqno - e.seqno) % 65536 > SEQNO_FAR:
            return
        current = dest.selected.metric if dest.selected is not None else INFINITY
        if e.metric + n.cost >= current:
            return
        seqno = seqno_plus(fd.seqno, 1)
        if self.requests.add(
            e.prefix,
            e.router_id,
            seqno=seqno,
            hop_count=self.hop_count,
            targets=(n.key,),
            requester=None,
            now=now,
        ):
            self._send(n.key, wire.SeqnoRequest(seqno, self.hop_count, e.prefix, e.router_id))

    def _on_seqno_request(self, n: Neighbour, req: wire.SeqnoRequest, *, now: float) -> None:
        if req.prefix == self.router_id:
            if req.router_id == self.router_id and seqno_gt(req.seqno, self.seqno):
                self.seqno = seqno_plus(self.seqno, 1)
                self._own_changed = True
            else:
                self._send_entries(n.key, [self._own_entry()], now=now)
            return
        dest = self.destinations.get(req.prefix)
        sel = dest.selected if dest is not None else None
        if sel is not None and (sel.router_id != req.router_id or seqno_ge(sel.seqno, req.seqno)):
            self._send_entries(n.key, [self._entry_for(req.prefix, n.key)], now=now)
            return
        if req.hop_count < 2 or dest is None:
            self.counters["route_request_dropped"] += 1
            return
        target = self._forward_target(dest, req, exclude=n.key)
        if target is None:
            self.counters["route_request_dropped"] += 1
            return
        if self.requests.add(
            req.prefix,
            req.router_id,
            seqno=req.seqno,
            hop_count=req.hop_count - 1,
            targets=(target,),
            requester=n.key,
            now=now,
        ):
            self._send(
                target, wire.SeqnoRequest(req.seqno, req.hop_count - 1, req.prefix, req.router_id)
            )

    @staticmethod
    def _forward_target(
        dest: Destination, req: wire.SeqnoRequest, *, exclude: bytes
    ) -> bytes | None:
        """The selected route's neighbour, or else the best other one that has the source
        (RFC 8966 3.8.1.2), never the requester."""
        if dest.selected is not None and dest.selected.neighbour != exclude:
            return dest.selected.neighbour
        options = [
            r
            for r in dest.routes.values()
            if r.neighbour != exclude and r.router_id == req.router_id and r.refmetric < INFINITY
        ]
        return min(options, key=lambda r: (r.metric, r.neighbour)).neighbour if options else None

    def _request_lost(self, prefix: bytes, state: Advertised, *, now: float) -> None:
        fd = self.sources.get(prefix, state.router_id)
        if fd is None or not self.neighbours:
            return  # we never advertised it: nothing of ours can loop, nothing to ask
        seqno = seqno_plus(fd.seqno, 1)
        targets = tuple(self.neighbours)
        if self.requests.add(
            prefix,
            state.router_id,
            seqno=seqno,
            hop_count=self.hop_count,
            targets=targets,
            requester=None,
            now=now,
        ):
            for key in targets:
                self._send(key, wire.SeqnoRequest(seqno, self.hop_count, prefix, state.router_id))
