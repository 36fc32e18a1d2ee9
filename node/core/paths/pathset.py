"""A native peer's candidate paths, and the one place that decides which one it uses.

Two roles, by configuration:

- a **chooser** (the peer has `endpoints`): it races the candidates before a session
  exists, probes each one on the control channel once it does (RTT, loss, last reply),
  fails over when the active path goes silent under traffic, and switches back to a
  more preferred path once it has answered probes again for a while;
- a **follower** (no endpoints: a provider's client dialled us): it sends where the
  peer's latest authenticated packet came from, as WireGuard roams, except that a probe
  the peer marked as not for its active path moves nothing.

Either way a path is only ever learned or moved to on an authenticated packet (the link
calls `authenticated` for each one, before its payload is handled), and the session is
the peer's: a switch sets `peer.path` and nothing else, so keys, counters and the replay
window stay as they are and no handshake is needed.

Timers, as named constants with their reasons (Tailscale's magicsock keeps them so):
"""

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from tidewire.protocol.link.constants import KEEPALIVE_TIMEOUT, REKEY_TIMEOUT
from tidewire.protocol.link.peer import Peer
from tidewire.protocol.types import Path

from .candidate import Candidate, Move, State

STAGGER = 0.25  # s between initiations to successive candidates (happy eyeballs, RFC 8305)
ACTIVE_PROBE_AFTER = 0.5  # s of traffic without a reply before the active path is probed
ACTIVE_PROBE_INTERVAL = 0.5  # and again this often while it stays silent
DEAD_AFTER = 1.5  # s of traffic without a reply: the active path is down (issue: <= 2 s)
MEASURE_INTERVAL = 5.0  # s between probes of a working path (RTT, loss)
CONFIRM_INTERVAL = 1.0  # s between probes of a path that came back, until it is trusted
SWITCH_BACK_STREAK = 3  # probes a more preferred path answers in a row before we move back
LOSSES_FOR_DOWN = 3  # probes lost in a row before a working path counts as down
REPROBE_MIN = 1.0  # s: the first re-probe of a path that went down
REPROBE_MAX = 8.0  # s: the backoff doubles up to here (the longest wait to switch back)
MAX_CANDIDATES = 8  # configured and learned together; the oldest learned one goes first
MAX_OUTSTANDING = 16  # probes awaiting a reply, per peer
# the link arms `new_handshake` this long after the first data sent since the last
# authenticated packet received (protocol/link/peer.py on_data_sent)
_NEW_HANDSHAKE_AFTER = KEEPALIVE_TIMEOUT + REKEY_TIMEOUT


# what happened to a peer's paths: (peer key, "switched" | "confirmed" | "learned", path, why)
Event = tuple[bytes, str, Path | None, str]


@dataclass(frozen=True, slots=True)
class Probe:
    """A probe to send on `path` (the manager turns it into a control message)."""

    probe_id: int
    path: Path
    sent: float
    active: bool


class PathSet:
    def __init__(
        self,
        peer: Peer,
        paths: list[Path],
        *,
        start: Path | None = None,
        new_id: Callable[[], int],
        unsettled: list["PathSet"],
        events: "deque[Event]",
    ) -> None:
        self.peer = peer
        self.chooser = bool(paths)
        self.candidates = [Candidate(p, i) for i, p in enumerate(paths)]
        self.new_id = new_id
        self.active: Candidate | None = None
        self.switches = 0
        self.confirmed = False  # the active path answered since it became active
        self.last_path: Path | None = None  # of the latest authenticated packet
        self.pending: Candidate | None = None  # a follower's move, until `settle`
        self.unanswered: float | None = None  # first data sent since the active one replied
        self._probe_marked: float | None = None  # a `new_handshake` that a probe of ours set
        self.outstanding: dict[int, tuple[Candidate, float]] = {}
        self.race: list[tuple[float, Candidate]] = []
        self.events = events  # the manager's: (peer key, kind, path, reason)
        self.probes: list[Probe] = []  # to send: the manager drains it
        self.initiations: list[Path] = []  # the current initiation again, on these paths
        self.last_active_probe: float | None = None
        self.racing = False  # an initiation is out and no path has answered it yet
        self._before_probes: float | None = None
        self.unsettled = unsettled
        if self.candidates:  # where the race starts: the first, or the last winner here
            peer.path = start if start in paths else self.candidates[0].path

    # -- what the link and the control channel tell us -------------------------

    def find(self, path: Path) -> Candidate | None:
        for c in self.candidates:
            if c.path == path:
                return c
        return None

    def authenticated(self, path: Path, now: float) -> None:
        """An authenticated packet of this peer came on `path` (called by the link)."""
        self.last_path = path
        active = self.active
        if active is not None and active.path == path:
            active.last_reply = now
            self.unanswered = None
            self.racing = False
            if not self.confirmed:
                self._confirm(active)
            return
        c = self.find(path) or self._learn(path, now)
        if c is None:
            return
        c.last_reply = now
        if not self.chooser:
            self.pending = c
            self.unsettled.append(self)
        elif active is None or self.racing:  # the first path to carry the handshake wins
            c.move(Move.ANSWER)
            self._switch(c, "answered first", now=now)
            self._confirm(c)

    def _learn(self, path: Path, now: float) -> Candidate | None:
        if len(self.candidates) >= MAX_CANDIDATES:
            learned = [c for c in self.candidates if c.learned and c is not self.active]
            if not learned:
                return None
            self.candidates.remove(min(learned, key=lambda c: c.learned_at))
        pref = max((c.preference for c in self.candidates), default=-1) + 1
        c = Candidate(path, pref, learned=True, learned_at=now)
        self.candidates.append(c)
        self.events.append((self.peer.public_key, "learned", path, "it carried a packet"))
        return c

    def add_candidate(self, path: Path, *, now: float) -> Candidate:
        """A path found some other way (a NAT punch, node/core/nat): preferred to every
        candidate so far, since it is direct; a chooser probes it at once and moves to it
        once it answers (SWITCH_BACK_STREAK probes in a row, if another path works)."""
        c = self.find(path)
        if c is None:
            if len(self.candidates) >= MAX_CANDIDATES:
                spare = [x for x in self.candidates if x is not self.active]
                self.candidates.remove(max(spare, key=lambda x: x.preference))
            pref = min((x.preference for x in self.candidates), default=1) - 1
            c = Candidate(path, pref, learned=True, learned_at=now)
            self.candidates.append(c)
            self.events.append((self.peer.public_key, "learned", path, "an introduction"))
        if self.chooser and c.state is not State.UP:
            c.next_probe = now
        return c

    def settle(self, *, now: float) -> None:
        """After the packet `authenticated` saw: a follower moves to its path."""
        c, self.pending = self.pending, None
        if c is not None and c is not self.active:
            self._switch(c, "the peer moved", now=now)

    def probed(self, *, active: bool, now: float) -> None:
        """The packet `authenticated` saw was a probe; `active` as the peer marked it."""
        if self.chooser:
            return
        c = self.pending
        if not active:
            self.pending = None  # a check of a spare path: stay where we are
        elif c is not None:
            self.settle(now=now)

    def answered(self, probe_id: int, echo_us: int, *, now: float) -> bool:
        """A probe reply; False if it names no probe of ours (the caller counts a drop)."""
        entry = self.outstanding.get(probe_id)
        if entry is None or _us(entry[1]) != echo_us:
            return False
        del self.outstanding[probe_id]
        c, sent = entry
        c.rtt.sample(now - sent)
        c.losses.record(lost=False)
        c.misses = 0
        c.streak += 1
        was = c.state
        c.move(Move.ANSWER)
        c.backoff = 0.0
        trusted = c.streak >= SWITCH_BACK_STREAK
        soon = self._better(c) and not trusted
        c.next_probe = now + (CONFIRM_INTERVAL if soon else MEASURE_INTERVAL)
        if c is self.active:
            if not self.confirmed:
                self._confirm(c)
        elif self.active is None or self.active.state is State.DOWN:
            self._switch(c, f"answered probes (was {was.value})", now=now)
        elif self._better(c) and trusted:
            self._switch(c, "a preferred path works again", now=now)
        return True

    # -- timers -----------------------------------------------------------------

    def observe(self) -> None:
        """Notice data sent since the active path last replied, from the link's own
        `new_handshake` timer (set on the first data sent after anything authenticated
        came in). Called before every `get_timer`, so after every batch."""
        nh = self.peer.new_handshake
        if nh is not None and self.unanswered is None and nh != self._probe_marked:
            self.unanswered = nh - _NEW_HANDSHAKE_AFTER

    def get_timer(self) -> float | None:
        if not self.chooser:
            return None
        self.observe()
        times = [t for t, _ in self.race[:1]]
        times += [sent + c.rtt.probe_timeout() for c, sent in self.outstanding.values()]
        if self._session():
            times += [c.next_probe for c in self.candidates if c.next_probe is not None]
            times += [c.next_probe or 0.0 for c in self.candidates if c.state is State.UNTRIED]
            if self.active is not None and self.unanswered is not None:
                times.append(self._active_probe_due())
                times.append(self.unanswered + DEAD_AFTER)
        return min(times) if times else None

    def _active_probe_due(self) -> float:
        assert self.unanswered is not None
        first = self.unanswered + ACTIVE_PROBE_AFTER
        last = self.last_active_probe
        if last is None or last < self.unanswered:
            return first
        return max(first, last + ACTIVE_PROBE_INTERVAL)

    def handle_timer(self, *, now: float) -> None:
        if not self.chooser:
            return
        self.observe()
        while self.race and self.race[0][0] <= now:
            _, c = self.race.pop(0)
            if self.active is None:
                self.initiations.append(c.path)
        for probe_id, (c, sent) in list(self.outstanding.items()):
            if now >= sent + c.rtt.probe_timeout():
                del self.outstanding[probe_id]
                self._lost(c, now=now)
        if not self._session():
            return
        active = self.active
        if active is not None and self.unanswered is not None:
            if now >= self.unanswered + DEAD_AFTER:
                self._fail(active, "no reply under traffic", now=now)
            elif now >= self._active_probe_due():
                self.last_active_probe = now
                self._probe(active, now=now)
        for c in self.candidates:
            due = c.next_probe
            if (due is not None and due <= now) or (due is None and c.state is State.UNTRIED):
                c.next_probe = None
                if not any(o is c for o, _ in self.outstanding.values()) or c is active:
                    self._probe(c, now=now)

    def initiation_sent(self, *, now: float) -> None:
        """The link sent an initiation on `peer.path`: race the other candidates behind
        it, STAGGER apart, until one of them carries the response back."""
        if not self.chooser or self._session():
            return
        first = self.peer.path
        others = [c for c in self._by_preference() if c.path != first]
        self.race = [(now + STAGGER * (i + 1), c) for i, c in enumerate(others)]
        self.racing = True

    # -- moves ------------------------------------------------------------------

    def _session(self) -> bool:
        return self.peer.current is not None

    def _by_preference(self) -> list[Candidate]:
        return sorted(self.candidates, key=lambda c: c.preference)

    def _better(self, c: Candidate) -> bool:
        return self.active is not None and c.preference < self.active.preference

    def _probe(self, c: Candidate, *, now: float) -> None:
        if len(self.outstanding) >= MAX_OUTSTANDING:
            del self.outstanding[next(iter(self.outstanding))]
        probe_id = self.new_id()
        self.outstanding[probe_id] = (c, now)
        if c.state is not State.UP:
            c.move(Move.PROBE)
        self.probes.append(Probe(probe_id, c.path, now, c is self.active))

    def take_probes(self) -> list[Probe]:
        """The probes to send now; call `probes_sent` once they are sealed."""
        out, self.probes = self.probes, []
        self._before_probes = self.peer.new_handshake
        return out

    def probes_sent(self) -> None:
        """A probe is data to the link, but the `new_handshake` timer it armed (if none was
        armed) says nothing about traffic: it is cleared, so the first data sent after the
        probe arms it as if the probe had not gone. (Marking it for `observe` to ignore
        hid the data sent behind the probe too, the timer being armed once: a path cut
        just after a probe went unnoticed under traffic until another path's probe was
        answered or its own were lost, 7.7 s in the overlay lab instead of DEAD_AFTER.)"""
        if self._before_probes is None and self.peer.new_handshake is not None:
            self.peer.new_handshake = None

    def _lost(self, c: Candidate, *, now: float) -> None:
        c.losses.record(lost=True)
        c.streak = 0
        c.misses += 1
        if c is self.active and self.unanswered is not None:
            return  # under traffic the active path has its own deadline (DEAD_AFTER)
        if c.state is State.UP and c.misses < LOSSES_FOR_DOWN:
            c.next_probe = now + CONFIRM_INTERVAL
            return
        self._fail(c, "probes lost", now=now)

    def _fail(self, c: Candidate, reason: str, *, now: float) -> None:
        was = c.state
        c.move(Move.FAIL)
        c.streak = 0
        c.backoff = REPROBE_MIN if was is not State.DOWN else min(c.backoff * 2, REPROBE_MAX)
        c.next_probe = now + c.backoff
        if c is not self.active:
            return
        nxt = self._failover_target(c)
        if nxt is not None:
            self._switch(nxt, f"{c.path} down ({reason})", now=now)
        elif self.unanswered is not None:  # nowhere else to go: give it another deadline
            self.unanswered = now
            self._probe_marked = self.peer.new_handshake

    def _failover_target(self, failed: Candidate) -> Candidate | None:
        ranked = [c for c in self._by_preference() if c is not failed]
        for wanted in (State.UP, State.UNTRIED, State.PROBING):
            for c in ranked:
                if c.state is wanted:
                    return c
        # everything is down: try the next one after the failed path, round robin
        later = [c for c in ranked if c.preference > failed.preference]
        pick = later or ranked
        return pick[0] if pick else None

    def _switch(self, c: Candidate, reason: str, *, now: float) -> None:
        old = self.active
        self.active = c
        self.confirmed = False
        self.race = []
        self.racing = False
        # traffic the old path left unanswered is now the new path's to answer: from now,
        # and never from the link's older `new_handshake` mark (or it would fail at once)
        sending = self.peer.new_handshake
        self.unanswered = now if old is not None and sending is not None else None
        self._probe_marked = sending
        self.last_active_probe = None
        c.next_probe = now  # at once: it checks the path and tells a follower to move
        self.peer.path = c.path
        if old is not None:
            self.switches += 1
        self.events.append((self.peer.public_key, "switched", c.path, reason))

    def _confirm(self, c: Candidate) -> None:
        self.confirmed = True
        self.events.append((self.peer.public_key, "confirmed", c.path, "the active path answers"))


def _us(t: float) -> int:
    """A monotonic time in microseconds, as a probe carries it (modulo 2**64)."""
    return round(t * 1_000_000) % (1 << 64)
