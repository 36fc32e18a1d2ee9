"""What the route exchange sends: hellos and IHUs, updates, and the actions out.

The engine (babel.py) decides; this half words it. An update for a prefix carries the
selected route's seqno, metric and router id, or infinity when there is none (a
retraction) and to the neighbour the route goes through (poison reverse). Every
finite entry is first recorded in the source table, where it lowers the feasibility
distance (RFC 8966 section 3.7.3); one that cannot be recorded (the table is full)
goes out as a retraction, since an advertisement without its FD could build a loop.
Entries are packed into as few UPDATE messages as the control channel's size allows.
A stub (`transit` False: a node that does not relay) announces only itself and
retracts everything else, so no route is built through a node that would drop it.
"""

from dataclasses import dataclass

from tidewire.protocol.control import routes as wire

from .metric import INFINITY, timestamp
from .neighbours import Neighbour
from .sources import SourceTable, seqno_plus
from .table import Destination


@dataclass(frozen=True, slots=True)
class Send:
    neighbour: bytes
    message: wire.RouteMessage


@dataclass(frozen=True, slots=True)
class Install:
    prefix: bytes
    next_hop: bytes
    metric: int


@dataclass(frozen=True, slots=True)
class Uninstall:
    prefix: bytes


Action = Send | Install | Uninstall


class Announcer:
    """The sending half of `Babel`; the attributes are the engine's."""

    router_id: bytes
    seqno: int
    hello_interval: float
    neighbours: dict[bytes, Neighbour]
    destinations: dict[bytes, Destination]
    sources: SourceTable
    _actions: list[Action]
    _changed: set[bytes]
    _own_changed: bool
    _interval_cs: int
    transit: bool

    def _send(self, key: bytes, msg: wire.RouteMessage) -> None:
        self._actions.append(Send(key, msg))

    def _send_hello(self, n: Neighbour, *, now: float) -> None:
        n.hello_seqno = seqno_plus(n.hello_seqno, 1)
        cs = round(self.hello_interval * 100)
        self._send(n.key, wire.RouteHello(n.hello_seqno, cs, timestamp(now)))
        self._send_ihu(n, now=now)

    def _send_ihu(self, n: Neighbour, *, now: float) -> None:
        cs = round(self.hello_interval * 100)
        origin, receive, transmit = n.echo(now=now)
        self._send(n.key, wire.Ihu(n.history.rxcost(), cs, origin, receive, transmit))

    def _own_entry(self) -> wire.UpdateEntry:
        return wire.UpdateEntry(self.router_id, self.seqno, 0, self.router_id)

    def _entry_for(self, prefix: bytes, to: bytes) -> wire.UpdateEntry:
        """What we announce for `prefix` to neighbour `to`: infinity if it is our next hop."""
        if prefix == self.router_id:
            return self._own_entry()
        dest = self.destinations.get(prefix)
        sel = dest.selected if dest is not None and self.transit else None
        if sel is None:
            state = dest.state if dest is not None else None
            if state is None:
                return wire.UpdateEntry(prefix, 0, INFINITY, prefix)
            return wire.UpdateEntry(prefix, state.seqno, INFINITY, state.router_id)
        metric = INFINITY if sel.neighbour == to else sel.metric
        return wire.UpdateEntry(prefix, sel.seqno, metric, sel.router_id)

    def _send_table(self, key: bytes, *, now: float) -> None:
        entries = [self._own_entry()]
        entries += [self._entry_for(p, key) for p, d in self.destinations.items() if d.selected]
        self._send_entries(key, entries, now=now)

    def _send_entries(self, key: bytes, entries: list[wire.UpdateEntry], *, now: float) -> None:
        """Send `entries`, recording each finite one in the source table first: one whose
        FD cannot be recorded (the table is full) goes out as a retraction."""
        safe = []
        for e in entries:
            recorded = e.metric >= INFINITY or e.prefix == self.router_id
            if not recorded and not self.sources.advertised(
                e.prefix, e.router_id, e.seqno, e.metric, now=now
            ):
                e = wire.UpdateEntry(e.prefix, e.seqno, INFINITY, e.router_id)
            safe.append(e)
        for msg in wire.pack_updates(safe, interval=self._interval_cs):
            self._send(key, msg)

    def _flush(self, *, now: float) -> None:
        if not self._changed and not self._own_changed:
            return
        prefixes = sorted(self._changed)
        self._changed.clear()
        for key in self.neighbours:
            entries = [self._entry_for(p, key) for p in prefixes]
            if self._own_changed:
                entries.append(self._own_entry())
            self._send_entries(key, entries, now=now)
        self._own_changed = False
