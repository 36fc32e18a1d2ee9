"""Short wake-ups while the link is in use, so that sparse packets find the node awake.

A process that has slept for tens of milliseconds comes back to a CPU that was halted
and to cold caches. On the benchmark VM the core then takes 40-150 µs to decrypt one
transport message instead of 3 (netns-lab/bench_cold.py), and a ping through the
tunnel crosses four such wake-ups. While inner packets have moved in the last second,
the node wakes itself every `interval` seconds (10 ms by default) and does nothing else:
that is enough to keep the CPU out of its deep sleep and the interpreter's working set
in cache, and it cut the added idle ping RTT by about a quarter (BENCHMARKS.md).

The cost is about 100 wake-ups per second while the link is in use, some 0.3% of a
CPU, and nothing while it is idle. Handshakes, keepalives and refused datagrams do not
count as use: persistent keepalives do not keep it ticking, nor can a flood of forged
datagrams. `tidewire up --tick-ms 0` turns it off.
"""

INTERVAL = 0.010
WINDOW = 1.0  # seconds of silence after which the ticks stop


class Ticker:
    """A timer component (get_timer / handle_timer) of the node's one timer task: its
    deadline exists only while inner packets moved within the last `window` seconds."""

    def __init__(self, interval: float = INTERVAL, window: float = WINDOW) -> None:
        self.interval = interval
        self.window = window
        self.last_activity = float("-inf")
        self.ticks = 0
        self._next: float | None = None

    def poke(self, now: float) -> None:
        """Inner packets moved at `now` (called after each data-path batch that moved any)."""
        self.last_activity = now
        if self._next is None and self.interval > 0:
            self._next = now + self.interval

    def get_timer(self) -> float | None:
        return self._next

    def handle_timer(self, *, now: float) -> None:
        due = self._next
        if due is None or now < due:
            return
        self.ticks += 1
        self._next = now + self.interval if now - self.last_activity < self.window else None
