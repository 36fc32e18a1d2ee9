"""One direction of an impaired link, without I/O: loss, a rate, delay and jitter.

    link = LinkModel(Impairment(delay=0.05, jitter=0.005, loss=0.01, rate=10e6))
    link.arrive(frame, now=t, rng=random.random)   # False: lost, or the queue was full
    link.due(now=t)                                 # frames whose time has come, in order
    link.deadline()                                 # when the next one is due, or None

A frame that survives loss (drawn from `rng`, uniform in [0, 1)) joins a FIFO that drains
at `rate` bit/s (a serialisation time of 8 * len / rate each, as a wire of that rate would
take; at most `limit` frames' worth of bytes wait, more are dropped at the tail), then
travels `delay` seconds plus a jitter drawn uniformly from [-jitter, +jitter]. Frames
leave in the order they came (netem's default when a rate is set): a frame never
overtakes an earlier one, so jitter stretches gaps without reordering. Times are
seconds; `now` comes from the caller.
"""

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

MTU = 1500


@dataclass(frozen=True)
class Impairment:
    delay: float = 0.0  # seconds, one way
    jitter: float = 0.0  # seconds, +/- around the delay
    loss: float = 0.0  # probability in [0, 1]
    rate: float = 0.0  # bit/s; 0: unlimited
    limit: int = 1000  # frames (of MTU bytes) waiting for the wire

    def __post_init__(self) -> None:
        if self.delay < 0 or self.jitter < 0 or self.rate < 0 or self.limit < 1:
            raise ValueError("delay, jitter and rate must be >= 0 and limit >= 1")
        if not 0 <= self.loss <= 1:
            raise ValueError("loss is a probability between 0 and 1")


@dataclass
class Stats:
    arrived: int = 0
    lost: int = 0
    overflow: int = 0
    sent: int = 0


class LinkModel:
    def __init__(self, impairment: Impairment) -> None:
        self.impairment = impairment
        self.stats = Stats()
        self._wire_free = 0.0  # when the wire finishes the last accepted frame
        self._last_due = 0.0
        self._queue: deque[tuple[float, float, bytes]] = deque()  # (on the wire until, due, frame)

    def arrive(self, frame: bytes, *, now: float, rng: Callable[[], float]) -> bool:
        imp = self.impairment
        self.stats.arrived += 1
        if imp.loss and rng() < imp.loss:
            self.stats.lost += 1
            return False
        backlog = max(0.0, self._wire_free - now) * imp.rate / 8  # bytes not yet on the wire
        if imp.rate and backlog + len(frame) > imp.limit * MTU:
            self.stats.overflow += 1
            return False
        start = max(now, self._wire_free)
        self._wire_free = start + (8 * len(frame) / imp.rate if imp.rate else 0.0)
        jitter = (2 * rng() - 1) * imp.jitter if imp.jitter else 0.0
        due = max(self._wire_free + imp.delay + jitter, self._last_due, now)
        self._last_due = due
        self._queue.append((self._wire_free, due, frame))
        return True

    def deadline(self) -> float | None:
        return self._queue[0][1] if self._queue else None

    def due(self, *, now: float) -> list[bytes]:
        out = []
        while self._queue and self._queue[0][1] <= now:
            out.append(self._queue.popleft()[2])
        self.stats.sent += len(out)
        return out
