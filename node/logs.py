"""The node's log lines: where they go and how they read, and the packet path's rate limit.

`configure` sets up the root logger for `tidewire up`. On a terminal or into a file a
line is `time name LEVEL message`. Under systemd, whose journal stamps every line
itself, the journal is recognised as systemd documents it: `$JOURNAL_STREAM` holds the
device and inode of the stream it gave us as stderr. Then a line carries no time and
starts with the sd-daemon(3) priority prefix (`<3>` error, `<4>` warning, `<6>` info,
`<7>` debug), so `journalctl -p warning` finds warnings and nothing is stamped twice.
Verbosity: 0 is info, each -v one level more (debug), each -q one less (warning, error).

Log lines from the packet path, rate-limited per subject.

A peer that roams across 500 source ports in 0.3 s would otherwise write a line per
datagram (20,000 lines, 1.7 MB, in the lab). Each subject (an event kind and a peer)
may log `BURST` lines per `WINDOW` seconds; what is held back is counted, and the next
line that gets through says how many were suppressed.
"""

import logging
import os
from collections.abc import Mapping
from typing import TextIO

BURST = 5
WINDOW = 10.0


PLAIN_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"
JOURNAL_FORMAT = "%(name)s: %(message)s"  # each line prefixed with <priority>
LEVELS = (logging.ERROR, logging.WARNING, logging.INFO, logging.DEBUG)  # -qq, -q, -, -v


def level(verbosity: int) -> int:
    """The logging level for a verbosity (the count of -v minus the count of -q)."""
    return LEVELS[max(0, min(len(LEVELS) - 1, 2 + verbosity))]


def priority(levelno: int) -> int:
    """The syslog priority of a logging level: 2 critical, 3 error, 4 warning, 6 info, 7 debug."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    return 6 if levelno >= logging.INFO else 7


def is_journal(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """Whether `stream` is the journal's stream ($JOURNAL_STREAM is its "device:inode")."""
    try:
        dev, ino = (int(part) for part in environ.get("JOURNAL_STREAM", "").split(":"))
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):  # unset, malformed, or no descriptor
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


class JournalFormatter(logging.Formatter):
    """`<priority>name: message`, each line of a multi-line message prefixed alike."""

    def __init__(self) -> None:
        super().__init__(JOURNAL_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).split("\n"))


def configure(*, verbosity: int, stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """Log to `stream` at the level of `verbosity`; True if the stream is the journal."""
    journal = is_journal(stream, os.environ if environ is None else environ)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JournalFormatter() if journal else logging.Formatter(PLAIN_FORMAT))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level(verbosity))
    return journal


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
