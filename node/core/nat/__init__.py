"""NAT traversal, sans-IO (docs/protocol/nat.md, docs/routing.md "NAT traversal").

Two nodes behind NATs that both have a session with a third node learn each other's
observed endpoints through it and punch: `mediator.py` is the third node's side,
`puncher.py` the two sides' (introductions, punch bursts, the retry backoff),
`detect.py` notices that we are behind a NAT (persistent keepalive then), `bounds.py`
says which endpoints are never aimed at. `Nat` puts them behind one set of verbs and
one timer for the shell (node/nat.py).
"""

from collections import Counter

from tidewire.protocol.control.nat import NatIntroduce, NatLookup, NatObserved

from .detect import Detector
from .mediator import Mediator, Observed, Send
from .puncher import Action, Heard, Punch, Puncher

__all__ = ["Action", "Heard", "Nat", "Punch", "Send"]


class Nat:
    """The node's NAT traversal: what the control channel, the link and the clock say
    go in; `take_actions()` (messages to send, punch datagrams to send) comes out."""

    def __init__(
        self,
        *,
        observed: Observed,
        heard: Heard,
        local: set[tuple[str, int]],
        mediate: bool = True,
        punch: bool = True,
    ) -> None:
        self.mediator = Mediator(observed=observed) if mediate else None
        self.puncher = Puncher(heard=heard)
        self.detector = Detector(local=local)
        self.punch = punch
        self.drops: Counter[str] = Counter()

    def take_actions(self) -> list[Action]:
        """What to do now, in order; each action is handed out once."""
        out = self.puncher.actions
        if self.mediator is not None:
            out += self.mediator.take()
        self.puncher.actions = []
        return out

    def counters(self) -> Counter[str]:
        total = self.puncher.counters + self.detector.counters + self.drops
        if self.mediator is not None:
            total += self.mediator.counters
        return total

    # -- peers ---------------------------------------------------------------------

    def add_target(self, key: bytes, *, now: float) -> None:
        """A peer we have no endpoint for: find it through our other peers."""
        if self.punch:
            self.puncher.add_target(key, now=now)

    def established(self, key: bytes, *, now: float) -> None:
        """A session with a native peer is up: it may introduce us, and be introduced."""
        if self.mediator is not None:
            self.mediator.established(key)
        self.puncher.mediator_up(key, now=now)

    def forget(self, key: bytes) -> None:
        if self.mediator is not None:
            self.mediator.forget(key)
        self.puncher.forget(key)
        self.detector.forget(key)

    # -- control messages ----------------------------------------------------------

    def on_lookup(self, key: bytes, msg: NatLookup, *, now: float) -> None:
        if self.mediator is None:
            self.drops["lookup_not_mediating"] += 1
            return
        self.mediator.lookup(key, msg, now=now)

    def on_introduce(self, key: bytes, msg: NatIntroduce, *, now: float) -> None:
        self.puncher.introduced(key, msg, now=now)

    def on_observed(self, key: bytes, msg: NatObserved, *, now: float) -> None:
        self.detector.observed(key, msg.endpoint)

    @property
    def behind_nat(self) -> bool:
        return self.detector.behind

    # -- timers --------------------------------------------------------------------

    def get_timer(self) -> float | None:
        return self.puncher.get_timer()

    def handle_timer(self, *, now: float) -> None:
        self.puncher.handle_timer(now=now)
