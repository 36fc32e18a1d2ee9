"""One candidate path of a peer: its state, its measurements and its probe schedule.

States, and what moves them (one table, `MOVES`):

    untried  configured or learned, never checked        probe -> probing
    probing  a first probe is out                        answer -> up, fail -> down
    up       answered a probe (or carried the handshake) fail -> down
    down     lost its probes, or went silent under traffic; re-probed with backoff,
             answer -> up

"fail" is decided by the path set (pathset.py): a first probe lost, LOSSES_FOR_DOWN
probes lost in a row on a path that was up, or the active path's silence while traffic
flows. An answer on any state makes the path up: a probe reply proves the round trip.
"""

from dataclasses import dataclass, field
from enum import Enum

from tidewire.protocol.types import Path

from .estimator import LossWindow, RttEstimator


class State(Enum):
    UNTRIED = "untried"
    PROBING = "probing"
    UP = "up"
    DOWN = "down"


class Move(Enum):
    PROBE = "probe"
    ANSWER = "answer"
    FAIL = "fail"


MOVES: dict[tuple[State, Move], State] = {
    (State.UNTRIED, Move.PROBE): State.PROBING,
    (State.UNTRIED, Move.ANSWER): State.UP,
    (State.UNTRIED, Move.FAIL): State.DOWN,
    (State.PROBING, Move.PROBE): State.PROBING,
    (State.PROBING, Move.ANSWER): State.UP,
    (State.PROBING, Move.FAIL): State.DOWN,
    (State.UP, Move.PROBE): State.UP,
    (State.UP, Move.ANSWER): State.UP,
    (State.UP, Move.FAIL): State.DOWN,
    (State.DOWN, Move.PROBE): State.DOWN,
    (State.DOWN, Move.ANSWER): State.UP,
    (State.DOWN, Move.FAIL): State.DOWN,  # one more lost re-probe: a longer backoff
}


class IllegalMove(Exception):
    """A move the table does not allow (a bug of ours, not the peer's)."""


@dataclass(eq=False)
class Candidate:
    path: Path
    preference: int  # lower is preferred: the configured order, learned paths after
    learned: bool = False
    state: State = State.UNTRIED
    rtt: RttEstimator = field(default_factory=RttEstimator)
    losses: LossWindow = field(default_factory=LossWindow)
    last_reply: float | None = None  # the last authenticated packet that came on it
    streak: int = 0  # probes answered in a row
    misses: int = 0  # probes lost in a row
    backoff: float = 0.0  # the current re-probe interval while down
    next_probe: float | None = None  # when the path set probes it next
    learned_at: float = 0.0

    def move(self, move: Move) -> State:
        new = MOVES.get((self.state, move))
        if new is None:
            raise IllegalMove(f"path {self.path}: no move {move.value} from {self.state.value}")
        self.state = new
        return new
