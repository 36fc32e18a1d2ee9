"""The punching side: find a peer we have no endpoint for, and punch to it.

For every target (a native peer configured without an endpoint) the puncher sends
NAT_LOOKUP to the peers it has sessions with (at most MAX_MEDIATORS), then again with
a backoff of 1, 2, 4 ... 60 s while it hears nothing from the target on a direct path
(the backoff grows with every failed punch, and with every round no introduction answers).
A mediator that has lookups from both sides answers each with NAT_INTRODUCE: then,
at once and at every PUNCH_SENDS offset (about 2 s in all), one punch datagram goes
to each introduced endpoint (`Punch`: the shell adds the endpoint as a candidate path
of the peer and sends a handshake initiation on it, or a path probe if a session
already exists, on a relay say). Both sides do the same at the same moment, so each
NAT has a mapping open towards the other before the other's packet arrives. A burst
that hears nothing on a direct path within PUNCH_WINDOW has failed (counted); the
lookups go on with their backoff, and each introduction they earn punches again.
Once the target is heard on a direct path the puncher stops; if that path goes quiet
for DIRECT_STALE it starts looking again from the shortest backoff.

"Heard" is the shell's `heard(key)`: when the target's latest authenticated packet came
on a direct (not relayed) path, so only the link's own authentication counts.

Bounds, so that a third party cannot aim our datagrams at arbitrary hosts: only
targets we configured are punched to; an introduction is taken only from a peer we
asked about that target within ASKED_TTL; endpoints that are no unicast host are
refused (bounds.py); one burst at a time per target and at most one per
PUNCH_MIN_INTERVAL; every punch datagram of the node takes a token from one bucket
(PUNCH_RATE, PUNCH_BURST). Every refusal is counted.
"""

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from tidewire.protocol.control.nat import NatIntroduce, NatLookup
from tidewire.protocol.link.ratelimiter import RateLimiter
from tidewire.protocol.types import UDP, Path

from .bounds import refusal
from .mediator import WISH_TTL, Send

# when the peer's latest authenticated packet on a direct path came, or None
Heard = Callable[[bytes], float | None]

PUNCH_SENDS = (0.0, 0.5, 1.0, 1.5, 2.0)  # s after the introduction: a NAT may drop the first
PUNCH_WINDOW = 2.5  # s: a burst that heard nothing on a direct path by then failed
PUNCH_MIN_INTERVAL = 3.0  # s between the starts of two bursts to one target
BACKOFF_MIN = 1.0  # s: the first retry of a lookup
BACKOFF_MAX = 60.0  # s: the backoff doubles up to here
ASKED_TTL = WISH_TTL  # s an introduction may answer our lookup
DIRECT_STALE = 80.0  # s of silence on the direct path (three missed 25 s keepalives)
DIRECT_CHECK = 10.0  # s between checks that a direct target is still heard
MAX_MEDIATORS = 4  # peers asked per lookup round
MAX_TARGETS = 256
PUNCH_RATE = 20.0  # punch datagrams a second, the whole node
PUNCH_BURST = 40  # at once (two targets of four endpoints, one burst step each, and more)


class Punch(NamedTuple):
    """One punch datagram to the peer `key` on `path` (a new candidate of that peer)."""

    key: bytes
    path: Path


Action = Send | Punch


@dataclass
class Burst:
    paths: tuple[Path, ...]
    started: float
    steps: list[float]  # offsets still to send, from PUNCH_SENDS


@dataclass
class Target:
    key: bytes
    backoff: float = 0.0
    next_lookup: float = 0.0  # the next lookup round, once a mediator is there
    asked: dict[bytes, float] = field(default_factory=dict)  # mediator -> when
    burst: Burst | None = None
    last_burst: float | None = None
    direct: bool = False
    unanswered: bool = False  # lookups sent and no introduction since
    next_check: float = 0.0
    punched: set[Path] = field(default_factory=set)  # the candidates we gave the peer


class Puncher:
    def __init__(self, *, heard: Heard) -> None:
        self.heard = heard
        self.targets: dict[bytes, Target] = {}
        self.mediators: dict[bytes, None] = {}  # peers with a session, oldest first
        self.actions: list[Action] = []
        self.budget = RateLimiter(rate=PUNCH_RATE, burst=PUNCH_BURST, idle=PUNCH_BURST / PUNCH_RATE)
        self.counters: Counter[str] = Counter()

    # -- peers -----------------------------------------------------------------------

    def add_target(self, key: bytes, *, now: float) -> None:
        if key in self.targets:
            return
        if len(self.targets) >= MAX_TARGETS:
            self.counters["targets_refused"] += 1
            return
        self.targets[key] = Target(key, next_lookup=now, next_check=now)

    def mediator_up(self, key: bytes, *, now: float) -> None:
        """A session with `key` is up: ask it at once about every target not yet found."""
        self.mediators.pop(key, None)
        self.mediators[key] = None
        for t in self.targets.values():
            self._check(t, now=now)
            if t.key != key and not t.direct and t.burst is None:
                self._ask(t, key, now=now)
                t.unanswered = True
                t.next_lookup = max(t.next_lookup, now + max(t.backoff, BACKOFF_MIN))

    def forget(self, key: bytes) -> None:
        self.targets.pop(key, None)
        self.mediators.pop(key, None)
        for t in self.targets.values():
            t.asked.pop(key, None)

    # -- introductions ------------------------------------------------------------------

    def introduced(self, mediator: bytes, msg: NatIntroduce, *, now: float) -> None:
        t = self.targets.get(msg.key)
        if t is None:
            self.counters["introductions_unknown_peer"] += 1
            return
        asked = t.asked.get(mediator)
        if asked is None or now - asked > ASKED_TTL:
            self.counters["introductions_unsolicited"] += 1
            return
        if t.direct:
            self.counters["introductions_while_direct"] += 1
            return
        if t.burst is not None or (
            t.last_burst is not None and now - t.last_burst < PUNCH_MIN_INTERVAL
        ):
            self.counters["introductions_rate_limited"] += 1
            return
        paths = []
        for endpoint in dict.fromkeys(msg.endpoints):
            reason = refusal(endpoint)
            if reason is None:
                paths.append(Path(UDP, endpoint))
            else:
                self.counters[f"endpoints_refused_{reason}"] += 1
        if not paths:
            return
        self.counters["punches_started"] += 1
        t.unanswered = False
        t.burst = Burst(tuple(paths), now, list(PUNCH_SENDS))
        t.last_burst = now
        t.punched.update(paths)
        self._step(t, now=now)

    def _step(self, t: Target, *, now: float) -> None:
        burst = t.burst
        assert burst is not None
        while burst.steps and burst.started + burst.steps[0] <= now:
            burst.steps.pop(0)
            for path in burst.paths:
                if self.budget.allow("punch", now=now):
                    self.actions.append(Punch(t.key, path))
                    self.counters["punch_datagrams"] += 1
                else:
                    self.counters["punch_budget_exhausted"] += 1

    # -- lookups -----------------------------------------------------------------------

    def _ask(self, t: Target, mediator: bytes, *, now: float) -> None:
        self.actions.append(Send(mediator, NatLookup(t.key)))
        t.asked[mediator] = now
        self.counters["lookups_sent"] += 1

    def _lookup_round(self, t: Target, *, now: float) -> None:
        asked = 0
        for m in self.mediators:
            if m != t.key and asked < MAX_MEDIATORS:
                self._ask(t, m, now=now)
                asked += 1
        if t.unanswered:  # the last round earned no introduction: wait longer
            _back_off(t)
        t.unanswered = True
        t.next_lookup = now + max(t.backoff, BACKOFF_MIN)

    def _is_heard(self, t: Target, *, since: float) -> bool:
        heard = self.heard(t.key)
        return heard is not None and heard >= since

    # -- timers ------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        times: list[float] = []
        for t in self.targets.values():
            times.append(t.next_check)
            if t.burst is not None:
                b = t.burst
                times.append(b.started + (b.steps[0] if b.steps else PUNCH_WINDOW))
            elif not t.direct and self.mediators:
                times.append(t.next_lookup)
        return min(times) if times else None

    def handle_timer(self, *, now: float) -> None:
        for t in self.targets.values():
            if t.burst is not None:
                self._burst_timer(t, now=now)
            if now >= t.next_check:
                t.next_check = now + DIRECT_CHECK
                self._check(t, now=now)
            if t.direct or t.burst is not None or not self.mediators:
                continue
            if now >= t.next_lookup:
                self._lookup_round(t, now=now)

    def _burst_timer(self, t: Target, *, now: float) -> None:
        b = t.burst
        assert b is not None
        if self._is_heard(t, since=b.started):
            t.burst = None
            self.counters["punches_succeeded"] += 1
            self._found(t, now=now)
        elif now >= b.started + PUNCH_WINDOW:
            t.burst = None
            self.counters["punches_failed"] += 1
            _back_off(t)  # whichever side's lookup earned the introduction
            t.next_lookup = now + t.backoff  # from the burst's end
        else:
            self._step(t, now=now)

    def _check(self, t: Target, *, now: float) -> None:
        """A target is direct while it is heard on a direct path; it may also have found
        us first (its punch, or its configured endpoint of us)."""
        heard = self._is_heard(t, since=now - DIRECT_STALE)
        if heard and not t.direct:
            self._found(t, now=now)
        elif not heard and t.direct:
            t.direct = False
            t.backoff = 0.0
            t.next_lookup = now
            self.counters["direct_lost"] += 1

    def _found(self, t: Target, *, now: float) -> None:
        t.direct = True
        t.backoff = 0.0
        t.next_check = now + DIRECT_CHECK

    def status(self) -> list[dict[str, object]]:
        """Every target: found directly or not, the current backoff, a burst under way."""
        return [
            {
                "peer": t.key,
                "direct": t.direct,
                "punching": t.burst is not None,
                "backoff": t.backoff,
                "punched": sorted(str(p) for p in t.punched),
            }
            for t in self.targets.values()
        ]


def _back_off(t: Target) -> None:
    t.backoff = BACKOFF_MIN if t.backoff == 0 else min(t.backoff * 2, BACKOFF_MAX)
