"""Lab only: run `tidewire` as a node that cheats at accounting, so tests can show the
honest side catches it. Production code has no switch for this; the hook is the class
attribute `Daemon.accountant_class`, replaced here with a subclass of Accountant.

    python netns-lab/tools/misbehave.py overbill FACTOR up CONFIG ...  # a provider
    python netns-lab/tools/misbehave.py silent up CONFIG ...           # never signs
    python netns-lab/tools/misbehave.py rotate SECONDS up CONFIG ...   # never signs and
                                              # says hello with a fresh session every SECONDS
    python netns-lab/tools/misbehave.py pause SECONDS up CONFIG ...    # signs nothing for
                                              # its first SECONDS, then pays as it should

Everything after the mode (and its number) is passed to tidewire's CLI unchanged.
"""

import sys
import time
from typing import Any

from tidewire.cli.main import main
from tidewire.node.accounting import Accountant
from tidewire.node.core.accounting import ServedSession, UsedSession
from tidewire.node.core.roles import Role
from tidewire.node.daemon import Daemon
from tidewire.protocol.control import channel


class Overbilling(Accountant):
    factor = 1.10

    def make_invoice(self, s: ServedSession, *, now: float, wall_ms: int) -> channel.Invoice:
        inv = s.make_invoice(now=now, wall_ms=wall_ms)
        inv = channel.Invoice(
            inv.session_id,
            inv.provider_key,
            inv.seq,
            int(inv.bytes_up * self.factor),
            int(inv.bytes_down * self.factor),
            inv.session_start_ms,
            inv.time_ms,
        )
        s.pending[inv.seq] = inv  # so the receipt it hopes for would match
        return inv


class Silent(Accountant):
    def answer_invoice(self, used: UsedSession, inv: channel.Invoice) -> Any:
        return None


class Pausing(Accountant):
    """Signs nothing until `seconds` after start, then answers invoices honestly (a client
    that stops paying for a while)."""

    seconds = 10.0
    started = time.monotonic()

    def answer_invoice(self, used: UsedSession, inv: channel.Invoice) -> Any:
        if time.monotonic() - self.started < self.seconds:
            return None
        return super().answer_invoice(used, inv)


class Rotating(Silent):
    """Never signs; every `interval` seconds it forgets its session and says hello with a
    fresh one (the attack per-client credit stops)."""

    interval = 0.5
    _next: float | None = None

    def get_timer(self) -> float | None:
        base = super().get_timer()
        if self._next is None:
            return base
        return self._next if base is None else min(base, self._next)

    def handle_timer(self, *, now: float) -> None:
        if self._next is None:
            self._next = now + self.interval
        if now >= self._next:
            self._next = now + self.interval
            for peer_key, role in self.roles.items():
                if role is Role.PROVIDER:
                    self.used[peer_key] = UsedSession(
                        session_id=self.rng(16), key=self.sign_key, config=self.config
                    )
                    self._send_hello(peer_key, now=now)
        super().handle_timer(now=now)

    def handshake_completed(self, peer_key: bytes, *, now: float) -> None:
        super().handshake_completed(peer_key, now=now)
        if self._next is None:
            self._next = now + self.interval


def run(argv: list[str]) -> int:
    if not argv or argv[0] not in ("overbill", "silent", "rotate", "pause"):
        print(
            "usage: misbehave.py overbill FACTOR|silent|rotate SECONDS|pause SECONDS ARGS...",
            file=sys.stderr,
        )
        return 2
    mode, rest = argv[0], argv[1:]
    cls: type[Accountant] = Silent
    if mode == "overbill":
        Overbilling.factor, rest = float(rest[0]), rest[1:]
        cls = Overbilling
    elif mode == "rotate":
        Rotating.interval, rest = float(rest[0]), rest[1:]
        cls = Rotating
    elif mode == "pause":
        Pausing.seconds, rest = float(rest[0]), rest[1:]
        cls = Pausing
    Daemon.accountant_class = cls
    return main(rest)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
