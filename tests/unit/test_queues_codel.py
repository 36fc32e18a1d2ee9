"""CoDel's control law (RFC 8289 section 3, as include/net/codel_impl.h) on constructed traces:
the drop times are computed here from the formula and must match exactly."""

from math import sqrt

from tidewire.node.core.queues.codel import INTERVAL, TARGET, CoDel, Entry

TICK = 0.001  # one dequeue per millisecond
HIGH = 0.020  # seconds of sojourn: above target
LOW = 0.001  # below target


class TraceQueue:
    """An endless queue whose head, when popped at `now`, has waited `sojourn(now)`; it logs
    the times of its drops and marks."""

    def __init__(self, sojourn: dict[tuple[float, float], float], *, ecn: bool = False) -> None:
        self.sojourn = sojourn
        self.now = 0.0
        self.backlog = 100_000
        self.ecn = ecn
        self.drops: list[float] = []
        self.marks: list[float] = []

    def pop(self) -> Entry | None:
        for (start, stop), sojourn in self.sojourn.items():
            if start <= self.now < stop:
                return (self.now - sojourn, 1500, None)
        return None

    def drop(self, entry: Entry) -> None:
        self.drops.append(self.now)

    def mark(self, entry: Entry) -> Entry | None:
        if not self.ecn:
            return None
        self.marks.append(self.now)
        return (entry[0], entry[1], "CE")


def ticks(start: float, stop: float) -> list[float]:
    return [k * TICK for k in range(round(start / TICK), round(stop / TICK))]


def expected_drops(above: list[tuple[float, float]]) -> list[float]:
    """The control law: a run starts at the first dequeue more than INTERVAL after the sojourn
    went above TARGET; the n-th drop of a run comes INTERVAL/sqrt(n) after the one before
    (at the first dequeue at or after it); a run that starts within 16 intervals of the last
    scheduled drop resumes at the count the last run added (codel_impl.h)."""
    drops: list[float] = []
    count = lastcount = 0
    drop_next = 0.0
    for start, stop in above:
        grid = ticks(start, stop)
        first = next(t for t in grid if t > grid[0] + INTERVAL)
        added = count - lastcount
        count = added if added > 1 and first - drop_next < 16 * INTERVAL else 1
        lastcount = count
        drops.append(first)
        drop_next = first + INTERVAL / sqrt(count)
        for t in grid:
            if t <= first:
                continue
            while t >= drop_next:
                count += 1
                drops.append(t)
                drop_next += INTERVAL / sqrt(count)
    return drops


def run(queue: TraceQueue, codel: CoDel, stop: float) -> list[tuple[float, Entry | None]]:
    out = []
    for t in ticks(0.0, stop):
        queue.now = t
        out.append((t, codel.dequeue(queue, t)))
    return out


def test_drop_times_follow_the_control_law_and_resume() -> None:
    # above target 0-1.5 s, below 1.5-1.8, above 1.8-2.5 (resumes), below until 4.5 (more
    # than 16 intervals: starts over), above 4.5-5.0
    above = [(0.0, 1.5), (1.8, 2.5), (4.5, 5.0)]
    trace = {(0.0, 1.5): HIGH, (1.5, 1.8): LOW, (1.8, 2.5): HIGH, (2.5, 4.5): LOW}
    trace[(4.5, 5.0)] = HIGH
    queue = TraceQueue(trace)
    codel = CoDel()
    run(queue, codel, 5.0)
    want = expected_drops(above)
    assert queue.drops == want
    # the first drop waits a whole interval above target, then sqrt-spaced
    assert want[0] == ticks(0, 1)[101] and want[1] == ticks(0, 1)[201]
    phase3 = [t for t in want if 1.8 <= t < 2.5]
    assert phase3[0] == ticks(1.8, 2.5)[101]
    # the resumed run drops faster than a fresh one: its second drop is < INTERVAL later
    assert phase3[1] - phase3[0] < INTERVAL * 0.5
    phase4 = [t for t in want if t >= 4.5]
    assert round(phase4[1] - phase4[0], 6) == INTERVAL


def test_no_drop_below_target_or_with_one_mtu_queued() -> None:
    queue = TraceQueue({(0.0, 2.0): TARGET * 0.99})
    run(queue, CoDel(), 2.0)
    assert queue.drops == []
    queue = TraceQueue({(0.0, 2.0): HIGH})
    queue.backlog = 1500  # what stays behind the packet: at most one MTU
    run(queue, CoDel(), 2.0)
    assert queue.drops == []


def test_ecn_marks_at_the_drop_times_and_the_marked_packet_leaves() -> None:
    above = [(0.0, 1.0)]
    queue = TraceQueue({(0.0, 1.0): HIGH}, ecn=True)
    out = run(queue, CoDel(), 1.0)
    assert queue.drops == []
    assert queue.marks == expected_drops(above)
    marked = [t for t, entry in out if entry is not None and entry[2] == "CE"]
    assert marked == queue.marks


def test_an_empty_queue_leaves_the_dropping_state() -> None:
    queue = TraceQueue({(0.0, 0.5): HIGH})
    codel = CoDel()
    run(queue, codel, 0.5)
    assert codel.dropping
    queue.now = 0.5
    assert codel.dequeue(queue, 0.5) is None
    assert not codel.dropping
