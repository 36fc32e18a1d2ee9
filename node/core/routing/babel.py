"""Overlay route exchange with Babel's semantics (RFC 8966), sans-IO.

The router id is the node's public key and every destination is a node key. Route
messages (protocol/control/routes.py) come in through `receive(neighbour, msg,
now=...)`, only from peers added with `add_neighbour`; the engine's outputs are
actions taken with `take_actions()`: `Send` a message to a neighbour, `Install` or
`Uninstall` a route. Time goes in through `handle_timer(now=...)` at `get_timer()`.

- Hellos and IHUs every `hello_interval` to each neighbour (neighbours.py, metric.py:
  ETX from the hello history, RTT from the IHU's timestamps).
- Our own route (seqno, metric 0) and every selected route go to every neighbour
  every `update_interval`; a change of a selected route goes at once (a triggered
  update: new, lost, another router id or seqno, or the metric moved by at least
  `trigger_delta`). To the neighbour a route goes through we announce infinity
  (poison reverse), so it never counts on us for a route that runs through itself.
- A lost route is retracted (metric infinity) and its source keeps its feasibility
  distance (sources.py), so no worse route for the same seqno can be taken until the
  origin's seqno moves: for that, a seqno request goes out (requests.py) when a route
  is lost, or when a neighbour offers a better route that is unfeasible.
- A new neighbour gets a hello and a wildcard route request (route requests on
  start); a route about to expire is asked for again from its neighbour.
- State is bounded: destinations (the oldest unused evicted), sources, requests.
"""

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from tidewire.protocol.control import routes as wire

from .agenda import Agenda
from .announce import Action, Install, Uninstall
from .metric import INFINITY, RttParams
from .neighbours import Neighbour
from .requests import Requests
from .seqno import SeqnoRequester
from .sources import SourceTable
from .table import Advertised, Destination, Route, select

HOUSEKEEPING = 1.0  # seconds between expiry, smoothing and resend checks
MAX_INTERVAL = 60.0  # a neighbour's update interval above this is taken as this


@dataclass(frozen=True, slots=True)
class Params:
    hello_interval: float = 4.0  # RFC 8966 appendix B
    update_interval: float = 16.0  # 4 hello intervals
    half_life: float = 4.0  # babeld's smoothing-half-life
    trigger_delta: int = 64  # smaller metric moves wait for the periodic update
    hop_count: int = 64  # of the seqno requests we start
    max_destinations: int = 4096
    max_sources: int = 8192
    transit: bool = True  # False: a stub that announces only itself (it forwards nothing)
    rtt: RttParams = field(default_factory=RttParams)


class Babel(SeqnoRequester):
    def __init__(
        self,
        *,
        router_id: bytes,
        rng: Callable[[int], bytes],
        now: float,
        params: Params = Params(),
    ) -> None:
        self.router_id = router_id
        self.params = params
        self.rng = rng
        self.seqno = int.from_bytes(rng(2), "big")
        self.neighbours: dict[bytes, Neighbour] = {}
        self.destinations: dict[bytes, Destination] = {}
        self.sources = SourceTable(cap=params.max_sources)
        self.requests = Requests()
        self.agenda = Agenda(self.sources)  # what housekeeping must look at (agenda.py)
        self._created = 0  # destinations created so far: their order
        self.counters: Counter[str] = Counter()
        self._actions: list[Action] = []
        self._changed: set[bytes] = set()  # prefixes to announce in a triggered update
        self._own_changed = False
        self._next_hello = now
        self._next_update = now + params.update_interval
        self._next_housekeeping = now + HOUSEKEEPING
        self._interval_cs = round(params.update_interval * 100)
        self.hello_interval = params.hello_interval
        self.transit = params.transit
        self.hop_count = params.hop_count  # of the seqno requests we start (seqno.py)

    # -- the verbs the shell calls

    def add_neighbour(self, key: bytes, *, now: float) -> None:
        if key in self.neighbours or key == self.router_id:
            return
        n = self.neighbours[key] = Neighbour(
            key, rtt=self.params.rtt, hello_seqno=int.from_bytes(self.rng(2), "big")
        )
        self._send_hello(n, now=now)
        self._send(key, wire.RouteRequest(None))

    def remove_neighbour(self, key: bytes, *, now: float) -> None:
        if self.neighbours.pop(key, None) is None:
            return
        for dest in list(self.destinations.values()):
            if dest.routes.pop(key, None) is not None:
                self.agenda.watch(dest.prefix)  # gone at housekeeping if it has no route left
                self._reselect(dest, now=now)
        self._flush(now=now)

    def receive(self, neighbour: bytes, msg: wire.RouteMessage, *, now: float) -> None:
        n = self.neighbours.get(neighbour)
        if n is None:
            self.counters["route_not_neighbour"] += 1
            return
        if isinstance(msg, wire.RouteHello):
            new = n.history.filled == 0
            n.on_hello(seqno=msg.seqno, interval_cs=msg.interval, ts=msg.timestamp, now=now)
            if new:  # tell it at once that we hear it, rather than a hello interval later
                self._send_ihu(n, now=now)
            self._link_changed(n, now=now)
        elif isinstance(msg, wire.Ihu):
            if not n.on_ihu(msg, now=now):
                self.counters["route_rtt_absurd"] += 1
            self._link_changed(n, now=now)
        elif isinstance(msg, wire.Update):
            hold = 3.5 * min(max(msg.interval / 100, HOUSEKEEPING), MAX_INTERVAL)
            for entry in msg.entries:
                self._on_update(n, entry, hold=hold, now=now)
        elif isinstance(msg, wire.RouteRequest):
            self._on_route_request(n, msg.prefix, now=now)
        else:
            self._on_seqno_request(n, msg, now=now)
        self._flush(now=now)

    def get_timer(self) -> float:
        return min(self._next_hello, self._next_update, self._next_housekeeping)

    def handle_timer(self, *, now: float) -> None:
        if now >= self._next_hello:
            self._next_hello = now + self.params.hello_interval
            for n in self.neighbours.values():
                self._send_hello(n, now=now)
        if now >= self._next_housekeeping:
            self._next_housekeeping = now + HOUSEKEEPING
            self._housekeeping(now=now)
        if now >= self._next_update:
            self._next_update = now + self.params.update_interval
            for key in self.neighbours:
                self._send_table(key, now=now)
        self._flush(now=now)

    def take_actions(self) -> list[Action]:
        out, self._actions = self._actions, []
        return out

    def next_hops(self) -> dict[bytes, bytes]:
        """Destination -> next hop of every selected route."""
        return {p: d.selected.neighbour for p, d in self.destinations.items() if d.selected}

    # -- incoming messages

    def _on_update(self, n: Neighbour, e: wire.UpdateEntry, *, hold: float, now: float) -> None:
        if e.prefix == self.router_id or e.router_id == self.router_id:
            self.counters["route_own"] += 1  # our own route coming back, or someone posing as us
            return
        dest = self.destinations.get(e.prefix)
        route = dest.routes.get(n.key) if dest is not None else None
        if route is None and e.metric >= INFINITY:
            return  # a retraction of a route we never had
        if dest is None:
            dest = self._new_destination(e.prefix, now=now)
            if dest is None:
                return
        feasible = self.sources.feasible(e.prefix, e.router_id, e.seqno, e.metric)
        if feasible and route is not None and self._refreshed(dest, route, e, n, hold, now=now):
            return
        if not feasible:
            self.counters["route_unfeasible"] += 1
            self._unfeasible(dest, n, e, now=now)
            if dest.selected is route and route is not None and route.router_id == e.router_id:
                return  # RFC 8966 3.5.4: the selected route ignores it until a new seqno
        half_life = self.params.half_life
        if route is None:
            route = Route(n.key, e.router_id, e.seqno, e.metric, n.cost, now + hold, hold, 0.0, now)
            route.smoothed = max(float(route.metric), INFINITY / 2)
            dest.routes[n.key] = route
        else:
            route.touch(now=now, half_life=half_life)
            route.router_id, route.seqno, route.refmetric = e.router_id, e.seqno, e.metric
            route.cost, route.hold = n.cost, hold
            route.expires = now + hold if e.metric < INFINITY else min(route.expires, now)
            route.refresh_asked = False
        if e.metric < INFINITY:
            dest.last_heard = now
        self._reselect(dest, now=now)
        self.agenda.queue(dest, route)
        self.agenda.check(dest)

    def _refreshed(
        self,
        dest: Destination,
        route: Route,
        e: wire.UpdateEntry,
        n: Neighbour,
        hold: float,
        *,
        now: float,
    ) -> bool:
        """The periodic update that repeats what a route already says, in a destination
        whose selection time cannot change (agenda.py, `contested`): only its hold starts
        again, and selection would choose as it did (every input the same, none expired),
        so it is not run. This is most of what a large overlay receives."""
        if (
            route.router_id != e.router_id
            or route.seqno != e.seqno
            or route.refmetric != e.metric
            or route.cost != n.cost
            or route.hold != hold
            or self.agenda.watching(dest.prefix)
        ):
            return False
        if e.metric < INFINITY:
            if now >= route.expires:
                return False
            for r in dest.routes.values():
                if r.refmetric < INFINITY and now >= r.expires:
                    return False  # housekeeping has not retracted it yet; selection would
            route.expires = now + hold
            dest.last_heard = now
        elif route.expires > now:
            return False
        route.touch(now=now, half_life=self.params.half_life)
        route.refresh_asked = False
        sel = dest.selected
        if sel is not None and self.requests.pending:
            self.requests.satisfied(dest.prefix, sel.router_id, sel.seqno)
        self.agenda.queue(dest, route)
        return True

    def _on_route_request(self, n: Neighbour, prefix: bytes | None, *, now: float) -> None:
        if prefix is None:
            self._send_table(n.key, now=now)
            return
        self._send_entries(n.key, [self._entry_for(prefix, n.key)], now=now)

    # -- state changes

    def _link_changed(self, n: Neighbour, *, now: float) -> None:
        if not n.refresh(now=now):
            return
        key, cost, half_life = n.key, n.cost, self.params.half_life
        for dest in self.destinations.values():
            route = dest.routes.get(key)
            if route is None:
                continue
            if route.refmetric >= INFINITY:
                route.cost = cost  # still infinite: nothing to smooth (touch sets it then)
                continue
            route.touch(now=now, half_life=half_life)
            route.cost = cost
            sel = dest.selected
            if sel is None or sel is route or route.metric <= sel.metric:
                self._reselect(dest, now=now)
                self.agenda.check(dest)
            # else it cannot win, now or by smoothing: the choice and the agenda stand

    def _reselect(self, dest: Destination, *, now: float) -> None:
        old = dest.selected
        new = dest.selected = select(dest, self.sources, now=now, half_life=self.params.half_life)
        if new is not old:
            if new is not None:
                self._actions.append(Install(dest.prefix, new.neighbour, new.metric))
                self.agenda.queue(dest, new)  # a selected route has one more deadline
            else:
                self._actions.append(Uninstall(dest.prefix))
        state = dest.state
        if new is None:
            if state is not None and state.metric < INFINITY:
                self._changed.add(dest.prefix)  # a retraction
                if state.metric <= INFINITY // 2:
                    self._request_lost(dest.prefix, state, now=now)
                dest.state = Advertised(state.router_id, state.seqno, INFINITY)
            return
        if state is None or (
            state.router_id != new.router_id
            or state.seqno != new.seqno
            or state.metric >= INFINITY
            or abs(state.metric - new.metric) >= self.params.trigger_delta
        ):
            self._changed.add(dest.prefix)
            dest.state = Advertised(new.router_id, new.seqno, new.metric)
        if self.requests.pending:
            self.requests.satisfied(dest.prefix, new.router_id, new.seqno)

    def _new_destination(self, prefix: bytes, *, now: float) -> Destination | None:
        if len(self.destinations) >= self.params.max_destinations:
            unused = [d for d in self.destinations.values() if d.selected is None]
            victim = min(unused or self.destinations.values(), key=lambda d: d.last_heard)
            if victim.selected is not None:
                self._actions.append(Uninstall(victim.prefix))
                self._changed.add(victim.prefix)
            del self.destinations[victim.prefix]
            self.counters["route_destinations_evicted"] += 1
        self._created += 1
        dest = self.destinations[prefix] = Destination(prefix, now, order=self._created)
        return dest

    def _housekeeping(self, *, now: float) -> None:
        for n in self.neighbours.values():
            n.check_missed(now=now)
            self._link_changed(n, now=now)
        for dest in self.agenda.due(self.destinations, now=now):
            prefix = dest.prefix
            moved = False  # did time change anything selection looks at?
            for key, r in list(dest.routes.items()):
                if now >= r.expires + r.hold:
                    del dest.routes[key]
                    moved = True
                elif r.refmetric < INFINITY and now >= r.expires:
                    r.touch(now=now, half_life=self.params.half_life)
                    r.refmetric = INFINITY
                    moved = True
                elif r is dest.selected and not r.refresh_asked and now >= r.expires - r.hold / 8:
                    r.refresh_asked = True  # about to expire: ask its neighbour (babeld)
                    self._send(key, wire.RouteRequest(prefix))
            if moved or self.agenda.contested(dest):  # or smoothing may switch it now
                self._reselect(dest, now=now)
            if not dest.routes:
                del self.destinations[prefix]
            for r in dest.routes.values():
                self.agenda.queue(dest, r)
            self.agenda.check(dest)
        for prefix, router_id, p in self.requests.due(now=now):
            for key in p.targets:
                if key in self.neighbours:
                    self._send(key, wire.SeqnoRequest(p.seqno, p.hop_count, prefix, router_id))
        for prefix in self.sources.collect(now=now):
            self.agenda.watch(prefix)  # an FD forgotten: a route it held back may count now
