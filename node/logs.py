"""Log lines from the packet path, rate-limited per subject.

A peer that roams across 500 source ports in 0.3 s would otherwise write a line per
datagram (20,000 lines, 1.7 MB, in the lab). Each subject (an event kind and a peer)
may log `BURST` lines per `WINDOW` seconds; what is held back is counted, and the next
line that gets through says how many were suppressed.
"""

import logging

BURST = 5
WINDOW = 10.0


class PacketPathLog:
    def __init__(self, logger: logging.Logger, *, burst: int = BURST, window: float = WINDOW):
        self.logger = logger
        self.burst = burst
        self.window = window
        self._subjects: dict[tuple[str, bytes], list[float]] = {}  # [window start, count, held]

    def log(
        self, level: int, kind: str, subject: bytes, msg: str, *args: object, now: float
    ) -> bool:
        """Log unless this subject has used its burst in the current window; True if logged."""
        key = (kind, subject)
        state = self._subjects.get(key)
        if state is None or now - state[0] >= self.window:
            held = int(state[2]) if state is not None else 0
            state = self._subjects[key] = [now, 0.0, 0.0]
            if len(self._subjects) > 4096:  # bounded: forget the oldest windows
                for old in sorted(self._subjects, key=lambda k: self._subjects[k][0])[:1024]:
                    del self._subjects[old]
                self._subjects[key] = state
            if held:
                msg += f" ({held} similar lines suppressed)"
        if state[1] >= self.burst:
            state[2] += 1
            return False
        state[1] += 1
        self.logger.log(level, msg, *args)
        return True
