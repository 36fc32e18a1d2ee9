"""Telling a service manager how the node is doing: systemd's notify protocol, sd_notify(3).

The manager passes a socket in `$NOTIFY_SOCKET`: a filesystem path, or a name in the
abstract namespace written with a leading '@' (its first byte is a NUL on the wire).
Each message is one datagram of newline-separated `NAME=value` assignments:

- `READY=1` once the interface is up and the peers are installed (Type=notify waits
  for it before it calls the unit started);
- `STATUS=...`, one line `systemctl status` shows;
- `RELOADING=1` (with `MONOTONIC_USEC`, which systemd 253 asks for) when a reload
  begins, then `READY=1` when it is done;
- `STOPPING=1` when the node begins to stop;
- `WATCHDOG=1` keep-alives while the unit has WatchdogSec: the manager sets
  `$WATCHDOG_USEC` (and `$WATCHDOG_PID`, which must be ours), and restarts a node
  that stays silent that long. `Watchdog` is a timer component (node/timers.py): it
  pings at half the interval from the one timer task, so the pings stop when the
  event loop stops turning, which is what the manager should hear.

No library: a dozen lines over an AF_UNIX datagram socket. Without `$NOTIFY_SOCKET`
every call is a no-op; a manager that is gone or a full socket loses the message
(counted in `dropped`), it never stops the node.
"""

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger("tidewire.sdnotify")


def socket_address(environ: Mapping[str, str]) -> str | None:
    """The address in $NOTIFY_SOCKET for socket.sendto, or None (unset, or not AF_UNIX)."""
    where = environ.get("NOTIFY_SOCKET", "")
    if where.startswith("@"):
        return "\0" + where[1:]
    if where.startswith("/"):
        return where
    return None  # unset, or a vsock: address this node does not speak


def watchdog_interval(environ: Mapping[str, str], *, pid: int) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of $WATCHDOG_USEC), None if no watchdog."""
    owner = environ.get("WATCHDOG_PID")
    if owner and owner != str(pid):
        return None  # the watchdog is another process's (a child started with our env)
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 2e6 if usec > 0 else None


class Notifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        self.address = socket_address(environ)
        self.watchdog = watchdog_interval(environ, pid=os.getpid())
        self.sent = 0
        self.dropped = 0
        self._sock: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *assignments: str) -> bool:
        """Send `NAME=value` lines as one datagram; True if the manager's socket took it."""
        if self.address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)  # a full socket drops a message, never blocks
            self._sock.sendto("\n".join(assignments).encode(), self.address)
        except OSError as exc:
            self.dropped += 1
            if self.dropped == 1:
                log.warning("the service manager's notify socket refused a message (%s)", exc)
            return False
        self.sent += 1
        return True

    def ready(self, status: str) -> bool:
        return self.notify("READY=1", f"STATUS={_one_line(status)}")

    def status(self, status: str) -> bool:
        return self.notify(f"STATUS={_one_line(status)}")

    def reloading(self) -> bool:
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1", "STATUS=stopping")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _one_line(text: str) -> str:
    return " ".join(text.split())


class Watchdog:
    """A timer component: WATCHDOG=1 every `interval` seconds of the timer task's clock."""

    def __init__(self, notifier: Notifier, *, interval: float, now: float) -> None:
        self.notifier = notifier
        self.interval = interval
        self.deadline = now  # the first ping as soon as the timer task runs
        self.pings = 0

    def get_timer(self) -> float | None:
        return self.deadline

    def handle_timer(self, *, now: float) -> None:
        if now < self.deadline:
            return
        self.notifier.notify("WATCHDOG=1")
        self.pings += 1
        self.deadline = now + self.interval


_default: Notifier | None = None


def default() -> Notifier:
    """The process's notifier, from its environment (one per process, as the socket is)."""
    global _default
    if _default is None:
        _default = Notifier()
    return _default


def notify(*assignments: str) -> bool:
    """sd_notify(0, "\\n".join(assignments)) for the process: e.g. notify("RELOADING=1")."""
    return default().notify(*assignments)
