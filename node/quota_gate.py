"""A provider's [share] quota in the native threads (issue 17): one native `Credit`
(dataplane/src/credit.rs), a signed counter both threads take every packet's inner
length from, passing packets while it is not negative and dropping the rest as the
Python path's QuotaMeter does (`quota_exhausted`, QUOTA).

The counter says what QuotaMeter would: a packet passes while `used < limit`, so the
counter stands at `limit - used - 1`. `sync` (at every poll of the threads' counters,
node/dataplane_loop.py) adds what the threads took since the last one to `used`, which
the meter persists, and brings the counter to the target again: bytes the Python path
counted, a reload's new limit and a new period all move it there. Between syncs the
threads need no Python: once the quota is used up, every thread stops at the gate, at
most one packet past it each.
"""

from typing import Any

from tidewire.node.core.capacity import QuotaMeter

QUOTA = "quota_exhausted"  # what the threads count a packet past the quota as


class QuotaGate:
    def __init__(self, make: Any) -> None:
        self.gate = make(-1)  # the native module's Credit: closed until the first sync
        self.synced = -1  # what the counter was last brought to
        self.meter: QuotaMeter | None = None

    def sync(self, meter: QuotaMeter | None) -> None:
        """Charge what the threads took to the meter they took it under, then aim the
        counter at `meter` (None: closed; the threads are given no gate then)."""
        left = self.gate.left
        taken = self.synced - left
        if self.meter is not None and taken > 0:
            self.meter.used += taken
        self.meter = meter
        target = -1 if meter is None else meter.limit - meter.used - 1
        self.gate.add(target - left)
        self.synced = target
