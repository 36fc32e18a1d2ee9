"""CoDel, Controlled Delay (RFC 8289), the state machine of Linux's include/net/codel_impl.h.

CoDel watches the sojourn time of each packet it dequeues (now minus its enqueue
time). While the sojourn stays under TARGET, or less than one MTU is queued behind the
packet, nothing happens. Once it has stayed at or above TARGET for a whole INTERVAL
(RFC 8289 section 3.2: `first_above_time`, with the strict "after" of codel_time_after),
CoDel enters the dropping state and drops (or ECN-marks) that packet, then drops again
each time `now` reaches `drop_next`, which follows the control law of section 3.3:

    drop_next = drop_next + INTERVAL / sqrt(count)

count rising by one per drop, so the drop rate grows with the square root of the drops
until the sojourn falls under TARGET (the dropping state ends) or the queue empties. A
drop dequeues the next packet at once and checks it again; a mark lets the marked packet
leave. Re-entering the dropping state soon (within 16 intervals of the last drop_next)
after a drop run of more than one, count restarts from what the last run added
(`count - lastcount`) rather than from 1 (section 5.6 and codel_impl.h).

Differences from codel_impl.h, all on purpose: times are float seconds, not u32
nanoseconds, so there is no wrap; 1/sqrt(count) is computed exactly where Linux keeps a
Q0.32 approximation refined by one Newton step per drop (RFC 8289 section 5.4 allows
either); `first_above_time == 0.0` still means "not above", as in Linux. The ce_threshold
option (mark at a lower delay, for DCTCP) is left out.

The queue is the caller's, behind `CodelQueue`: `pop` removes the head and returns its
`(enqueue_time, size, item)`, `drop` disposes of a popped entry (counting it), `mark`
returns the entry ECN-marked or None if it cannot be marked (Not-ECT, or ECN off), and
`backlog` is the bytes still queued where the MTU check looks (FQ-CoDel: all flows).
"""

from math import sqrt
from typing import Any, Protocol

TARGET = 0.005  # seconds: acceptable standing queue delay (RFC 8289 section 4.4)
INTERVAL = 0.100  # seconds: a worst-case RTT the queue must drain within (section 4.3)
MTU = 1500  # bytes: with no more than this queued, never drop (codel_should_drop)
REENTRY_INTERVALS = 16  # re-entering within this many intervals resumes the drop rate

Entry = tuple[float, int, Any]  # enqueue time, size in bytes, item


class CodelQueue(Protocol):
    @property
    def backlog(self) -> int: ...

    def pop(self) -> Entry | None: ...

    def drop(self, entry: Entry) -> None: ...

    def mark(self, entry: Entry) -> Entry | None: ...


class CoDel:
    """The CoDel variables of one queue (codel_vars) and its dequeue (codel_dequeue)."""

    __slots__ = ("count", "drop_next", "dropping", "first_above_time", "lastcount")

    def __init__(self) -> None:
        self.count = 0  # drops (and marks) since entering the dropping state, plus resume
        self.lastcount = 0  # count when the dropping state was last entered
        self.dropping = False
        self.first_above_time = 0.0  # when the sojourn may be called persistent; 0: below
        self.drop_next = 0.0  # time of the next drop while dropping

    def is_idle(self, now: float, interval: float = INTERVAL) -> bool:
        """True when this state acts exactly like a fresh one from `now` on, so an owner may
        forget it: not above target, not dropping, and too long ago to resume the rate."""
        return (
            not self.dropping
            and self.first_above_time == 0.0
            and now - self.drop_next >= REENTRY_INTERVALS * interval
        )

    def should_drop(
        self,
        entry: Entry | None,
        backlog: int,
        now: float,
        target: float,
        interval: float,
        mtu: int,
    ) -> bool:
        """codel_should_drop: has the sojourn been above target for a whole interval?"""
        if entry is None:
            self.first_above_time = 0.0
            return False
        sojourn = now - entry[0]
        if sojourn < target or backlog <= mtu:
            self.first_above_time = 0.0
            return False
        if self.first_above_time == 0.0:
            self.first_above_time = now + interval
            return False
        return now > self.first_above_time

    def dequeue(
        self,
        queue: CodelQueue,
        now: float,
        target: float = TARGET,
        interval: float = INTERVAL,
        mtu: int = MTU,
    ) -> Entry | None:
        """The next entry to send from `queue`, after the drops (or marks) the law calls for."""
        entry = queue.pop()
        if entry is None:
            self.dropping = False
            return None
        drop = self.should_drop(entry, queue.backlog, now, target, interval, mtu)
        if self.dropping:
            if not drop:
                self.dropping = False  # sojourn below target: leave the dropping state
            else:
                while self.dropping and now >= self.drop_next:
                    self.count += 1
                    marked = queue.mark(entry)  # type: ignore[arg-type]
                    if marked is not None:
                        self.drop_next += interval / sqrt(self.count)
                        return marked
                    queue.drop(entry)  # type: ignore[arg-type]
                    entry = queue.pop()
                    if not self.should_drop(entry, queue.backlog, now, target, interval, mtu):
                        self.dropping = False
                    else:
                        self.drop_next += interval / sqrt(self.count)
        elif drop:
            marked = queue.mark(entry)
            if marked is not None:
                entry = marked
            else:
                queue.drop(entry)
                entry = queue.pop()
                self.should_drop(entry, queue.backlog, now, target, interval, mtu)
            self.dropping = True
            delta = self.count - self.lastcount
            if delta > 1 and now - self.drop_next < REENTRY_INTERVALS * interval:
                self.count = delta
            else:
                self.count = 1
            self.lastcount = self.count
            self.drop_next = now + interval / sqrt(self.count)
        return entry
