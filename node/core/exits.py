"""Choosing the exit a client sends its traffic to (`[routing] exit = "auto"`), sans-IO.

Candidates are providers from the record cache (node/core/discovery.py): each `Offer`
says what its record says (price per GiB in micro-units, load in percent of its
`max_clients`, region). The shell adds what it measured (`measured`): a metric in
milliseconds-equivalent (the Babel metric to the key if the route exchange knows it,
else the RTT and loss of the session's active path, docs/routing.md) and whether the
exit answers (`up`: False when its path is down or its handshake failed). Before a
candidate is measured, UNMEASURED_MS stands in for its metric.

The score is a cost, lower is better:

    cost = (metric_ms + FLOOR_MS) * (1 + load / 100) * (1 + price / PRICE_UNIT)

FLOOR_MS keeps two near exits from looking 10% apart over a millisecond; PRICE_UNIT
(one token per GiB) doubles the cost. `max_price`, `region` and `avoid` remove
candidates before any score.

Switching follows Althea's rule: the current exit is kept while it answers; another
replaces it only when its cost has stayed more than MARGIN (10%) below the current
one's for WINDOW seconds without a break. The current exit's load is corrected for
our own share of it (one of its `clients`), so a client does not flee the load it
makes itself. When the current exit stops answering the best answering candidate
takes over at once (failover). The first choice waits until the candidates the
shell connects to (`standby`) are measured, or SETTLE seconds, whichever is first. A
first choice made at SETTLE without them is provisional: for PROVISIONAL seconds a
candidate that answers and is more than MARGIN cheaper takes over at once (reason
"settled"), without the window. A handshake lost on the way (the next try is 5 s later)
must not tie the client to a worse exit for WINDOW seconds; once sessions are measured,
Althea's rule alone applies. Likewise after a failover: the exit failed over from, if
it answers again within RETURN seconds and is more than MARGIN cheaper than the one we
fell back on, is returned to at once ("recovered"), unless it failed before within
FLAP_WINDOW (an exit that flaps is left for Althea's rule). A failover is a move we did
not choose; a transient (a lost probe, a route withdrawn for a moment) must not leave
the client on a worse exit for WINDOW seconds.

Relays (`hops`, docs/routing.md "Hops"): the shell tells the chooser, per candidate,
which of our route-exchange neighbours have a route to it and at what metric
(`routed_via`). `paths(key)` is what the session with that exit may use, in order of
preference: with `hops = 1` its own endpoints first (DIRECT), then relays; with
`hops >= 2` relays only, never DIRECT, so the exit sees a relay's address and never
ours. The first relay is the one our own selected route goes through when that is a
relay (the route exchange's hysteresis keeps it steady), then the others by metric.
With `hops >= 2` a candidate no relay reaches does not answer (`up` is False, its
report row says `no_relay`): it is not chosen, and a current exit that loses its last
relay is failed over from. The relay frame carries a destination, not a chain, so a
client names its first relay and the relays' routes decide the rest: `hops` above 2
cannot be enforced and the config refuses it (node/config/routing.py).

Time goes in through `handle_timer(now=...)` at `get_timer()`; decisions come out as
`Switch` events (`take_events`).
"""

from collections import Counter
from dataclasses import dataclass, field

FLOOR_MS = 20.0
UNMEASURED_MS = 250.0
PRICE_UNIT = 1_000_000  # micro-units per GiB: one token
MARGIN = 0.10  # Althea: more than 10% better ...
WINDOW = 180.0  # ... for several minutes
SETTLE = 3.0  # s the first choice waits for measurements
PROVISIONAL = 15.0  # s a first choice made without them may still be corrected at once
RETURN = 120.0  # s after a failover in which the exit we left may take us back at once
FLAP_WINDOW = 600.0  # s: an exit that failed twice within this is not returned to early
EVALUATE = 0.5  # s between evaluations
STANDBY = 2  # candidates besides the current one kept connected and measured
MAX_CANDIDATES = 256
MAX_RELAYS = 3  # relayed paths per exit session (the path set holds 8 candidates)
DIRECT = None  # in `paths`: the exit's own endpoints


@dataclass(frozen=True, slots=True)
class Offer:
    public_key: bytes  # X25519, the link's identity
    price: int = 0  # micro-units per GiB
    load: int = 0  # percent of `clients`
    clients: int = 0  # the most it serves (0: not said)
    region: str = ""
    endpoints: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Preferences:
    exit: bytes | None = None  # a fixed exit's key; None: "auto"
    max_price: int | None = None
    region: str | None = None
    avoid: frozenset[bytes] = frozenset()
    hops: int = 1  # at least hops - 1 relays between us and the exit


@dataclass(frozen=True, slots=True)
class Switch:
    old: bytes | None
    new: bytes | None
    reason: str  # "first", "settled", "recovered", "better", "failover", "gone", "fixed"


@dataclass(slots=True)
class _Seen:
    metric: float | None = None  # ms-equivalent, None: not measured yet
    up: bool | None = None  # None: not known yet
    relays: dict[bytes, float] = field(default_factory=dict)  # neighbour -> route metric, ms
    first: bytes | None = None  # the neighbour our selected route to it goes through


@dataclass
class ExitChooser:
    prefs: Preferences
    own_key: bytes = b""
    margin: float = MARGIN
    window: float = WINDOW
    offers: dict[bytes, Offer] = field(default_factory=dict)
    seen: dict[bytes, _Seen] = field(default_factory=dict)
    current: bytes | None = None
    better_since: dict[bytes, float] = field(default_factory=dict)
    first_offer: float | None = None
    provisional_until: float | None = None  # a first choice made at SETTLE, unmeasured
    failed: dict[bytes, list[float]] = field(default_factory=dict)  # failovers away, by exit
    next_eval: float | None = None
    events: list[Switch] = field(default_factory=list)
    counters: Counter[str] = field(default_factory=Counter)

    # -- what the shell tells it ----------------------------------------------

    def set_offers(self, offers: list[Offer], *, now: float) -> None:
        """The providers the record cache holds now (the current exit's offer is kept
        while it answers, even if its record went away)."""
        fresh = {o.public_key: o for o in offers[:MAX_CANDIDATES] if o.public_key != self.own_key}
        if len(offers) > MAX_CANDIDATES:
            self.counters["offers_over_cap"] += len(offers) - MAX_CANDIDATES
        if self.current is not None and self.current not in fresh:
            old = self.offers.get(self.current)
            if old is not None:
                fresh[self.current] = old
        self.offers = fresh
        for k in [k for k in self.seen if k not in fresh]:
            del self.seen[k]
        for k in [k for k in self.better_since if k not in fresh]:
            del self.better_since[k]
        if self.first_offer is None and self.eligible():
            self.first_offer = now
        if self.next_eval is None:
            self.next_eval = now

    def measured(self, key: bytes, *, metric: float | None, up: bool | None, now: float) -> None:
        if key not in self.offers:
            return
        s = self.seen.setdefault(key, _Seen())
        s.metric, s.up = metric, up
        if key == self.current and self._answering(key) is False:
            self._failover(now=now)

    def routed_via(
        self, key: bytes, relays: dict[bytes, float], *, selected: bytes | None, now: float
    ) -> None:
        """The neighbours with a finite route to `key` (metric in ms-equivalent) and the
        one our selected route goes through (None: no selected route)."""
        if key not in self.offers:
            return
        s = self.seen.setdefault(key, _Seen())
        s.relays = {k: m for k, m in relays.items() if k not in (key, self.own_key)}
        s.first = selected
        if key == self.current and self._answering(key) is False:
            self._failover(now=now)

    def relays(self, key: bytes) -> list[bytes]:
        """The relays a session with `key` goes through, best first (module comment)."""
        s = self.seen.get(key)
        if s is None:
            return []
        ranked = sorted(s.relays, key=lambda k: (k != s.first, s.relays[k], k))
        return ranked[:MAX_RELAYS]

    def paths(self, key: bytes) -> list[bytes | None]:
        """DIRECT and relay keys, in order of preference, that a session with `key` may
        use: with hops >= 2 relays only."""
        relayed: list[bytes | None] = list(self.relays(key))
        return relayed if self.prefs.hops >= 2 else [DIRECT, *relayed]

    # -- what it decides --------------------------------------------------------

    def eligible(self) -> list[Offer]:
        p = self.prefs
        out = []
        for o in self.offers.values():
            if p.exit is not None and o.public_key != p.exit:
                continue
            if p.max_price is not None and o.price > p.max_price:
                continue
            if p.region is not None and o.region != p.region:
                continue
            if o.public_key in p.avoid:
                continue
            out.append(o)
        return out

    def cost(self, key: bytes) -> float:
        """The score of a candidate: lower is better (module comment)."""
        o = self.offers[key]
        s = self.seen.get(key, _Seen())
        metric = UNMEASURED_MS if s.metric is None else s.metric
        if self.prefs.hops >= 2 and s.relays:  # the route through the best relay
            metric = min(s.relays.values())
        load = float(o.load)
        if key == self.current and o.clients:
            load = max(0.0, load - 100.0 / o.clients)  # our own share of its load
        return (metric + FLOOR_MS) * (1 + load / 100) * (1 + o.price / PRICE_UNIT)

    def standby(self) -> list[bytes]:
        """The candidates the shell should keep sessions with and measure: the current
        exit and the best STANDBY others that are not known to be down."""
        ranked = sorted(
            (o.public_key for o in self.eligible() if self._answering(o.public_key) is not False),
            key=lambda k: (self.cost(k), k),
        )
        others = [k for k in ranked if k != self.current][:STANDBY]
        return ([self.current] if self.current is not None else []) + others

    def _answering(self, key: bytes) -> bool | None:
        s = self.seen.get(key)
        if self.prefs.hops >= 2 and (s is None or not s.relays):
            return False  # no relay reaches it: never direct
        return None if s is None else s.up

    def _best(self, *, exclude: bytes | None = None) -> bytes | None:
        """The cheapest eligible candidate that answers, else one not known to be down."""
        cands = [o.public_key for o in self.eligible() if o.public_key != exclude]
        for want in (True, None):
            pool = [k for k in cands if self._answering(k) is want]
            if pool:
                return min(pool, key=lambda k: (self.cost(k), k))
        return None

    def _switch(self, new: bytes | None, reason: str) -> None:
        if new == self.current:
            return
        self.events.append(Switch(self.current, new, reason))
        self.counters["switch_" + reason] += 1
        self.current = new
        self.better_since.clear()

    def _failover(self, *, now: float) -> None:
        if self.prefs.exit is not None:
            return  # a fixed exit is waited for, never replaced
        old = self.current
        if old is not None:
            times = [t for t in self.failed.get(old, []) if now - t < FLAP_WINDOW]
            self.failed[old] = [*times, now]
            if len(self.failed) > MAX_CANDIDATES:
                del self.failed[next(iter(self.failed))]
        self._switch(self._best(exclude=self.current), "failover")

    def _may_return(self, key: bytes, *, now: float) -> bool:
        """Did we fail over from `key` lately, and only once (module comment)?"""
        times = [t for t in self.failed.get(key, []) if now - t < FLAP_WINDOW]
        return len(times) == 1 and now - times[0] < RETURN

    def _measured(self) -> bool:
        wanted = self.standby()
        return bool(wanted) and all(self._answering(k) is True for k in wanted)

    def _settled(self, *, now: float) -> bool:
        if self.first_offer is not None and now - self.first_offer >= SETTLE:
            return True
        return self._measured()

    def get_timer(self) -> float | None:
        return self.next_eval

    def handle_timer(self, *, now: float) -> None:
        if self.next_eval is None or now < self.next_eval:
            return
        self.next_eval = now + EVALUATE
        cur = self.current
        if cur is not None and cur not in self.offers:
            self._switch(self._best(), "gone")
            return
        if cur is not None and self._answering(cur) is False:
            self._failover(now=now)
            return
        if self.prefs.exit is not None:
            if cur is None and self.eligible():
                self._switch(self.prefs.exit, "fixed")
            return
        if cur is None:
            if self.eligible() and self._settled(now=now):
                if not self._measured():
                    self.provisional_until = now + PROVISIONAL
                self._switch(self._best(), "first")
            return
        if cur not in {o.public_key for o in self.eligible()}:  # filtered out by a reload
            self._switch(self._best(), "gone")
            return
        self._hysteresis(now=now)

    def _hysteresis(self, *, now: float) -> None:
        assert self.current is not None
        bar = (1 - self.margin) * self.cost(self.current)
        clearly = {
            o.public_key
            for o in self.eligible()
            if o.public_key != self.current
            and self._answering(o.public_key) is True
            and self.cost(o.public_key) < bar
        }
        for k in [k for k in self.better_since if k not in clearly]:
            del self.better_since[k]  # the advantage broke: its window starts over
        for k in clearly:
            self.better_since.setdefault(k, now)
        back = [k for k in clearly if self._may_return(k, now=now)]
        if back:  # the exit a failover took us from answers again, and is clearly better
            self._switch(min(back, key=lambda k: (self.cost(k), k)), "recovered")
            return
        if self.provisional_until is not None and now < self.provisional_until:
            if clearly:  # the first choice was made before this one answered
                self._switch(min(clearly, key=lambda k: (self.cost(k), k)), "settled")
            return
        self.provisional_until = None
        ready = [k for k in clearly if now - self.better_since[k] >= self.window]
        if ready:
            self._switch(min(ready, key=lambda k: (self.cost(k), k)), "better")

    def take_events(self) -> list[Switch]:
        out, self.events = self.events, []
        return out

    def report(self, *, now: float) -> list[dict[str, object]]:
        """Every known provider with its score, for `tidewire exits`."""
        ok = {o.public_key for o in self.eligible()}
        out: list[dict[str, object]] = []
        for key, o in sorted(self.offers.items(), key=lambda kv: (self.cost(kv[0]), kv[0])):
            s = self.seen.get(key, _Seen())
            out.append(
                {
                    "public_key": key,
                    "score": round(self.cost(key), 2),
                    "metric_ms": None if s.metric is None else round(s.metric, 2),
                    "up": self._answering(key),
                    "relays": self.relays(key),
                    "no_relay": self.prefs.hops >= 2 and not s.relays,
                    "price": o.price,
                    "load": o.load,
                    "region": o.region,
                    "eligible": key in ok,
                    "current": key == self.current,
                    "better_for": None
                    if key not in self.better_since
                    else round(now - self.better_since[key], 1),
                }
            )
        return out


def path_metric(rtt_s: float | None, loss: float) -> float | None:
    """A session's active path as a metric: RTT in ms, scaled by expected
    transmissions (1 / (1 - loss)), as the route exchange's ETX does."""
    if rtt_s is None:
        return None
    return rtt_s * 1000 / max(0.05, 1 - loss)


def babel_metric(metric: int) -> float:
    """A Babel metric in the same scale: a lossless hop (256) counts as 10 ms."""
    return metric * 10 / 256
