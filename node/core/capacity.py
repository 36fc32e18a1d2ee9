"""A provider's capacity and quota ([share] `max_clients`, `quota`), sans I/O.

`Admission.admit(peer, now=)` is the link's admission hook, asked after an initiation
has authenticated and before it changes any state: a peer that already holds a live
session is always let back in (a rekey), a new one only while fewer than `max_clients`
other peers hold live sessions. A session is live while its newest keypair is younger
than REJECT_AFTER_TIME (180 s), as the link itself would still accept data on it.
Refusals are counted by the link (`initiation_capacity`).

`QuotaMeter` counts the bytes served to and from clients in the current period and
refuses more once `limit` is reached, until the period ends. The shell tells it the
period's bounds (UTC Unix seconds, node/config/share.py `QuotaPeriod.bounds`) and the
wall-clock time; what it has used is the shell's to persist.
"""

from collections.abc import Iterable

from tidewire.protocol.link.constants import REJECT_AFTER_TIME
from tidewire.protocol.link.peer import Peer


def live(peer: Peer, *, now: float) -> bool:
    kp = peer.current or peer.next
    return kp is not None and now - kp.created < REJECT_AFTER_TIME


class Admission:
    def __init__(self, peers: Iterable[Peer], *, max_clients: int | None) -> None:
        self.peers = peers  # the device's peers (a live view)
        self.max_clients = max_clients
        self.refused = 0

    def admit(self, peer: Peer, now: float) -> bool:
        if self.max_clients is None or live(peer, now=now):
            return True
        others = sum(1 for p in self.peers if p is not peer and live(p, now=now))
        if others < self.max_clients:
            return True
        self.refused += 1
        return False


class QuotaMeter:
    def __init__(self, limit: int, *, start: int, end: int, used: int = 0) -> None:
        self.limit = limit
        self.start = start  # the period, in UTC Unix seconds, end excluded
        self.end = end
        self.used = used
        self.refused = 0

    @property
    def exhausted(self) -> bool:
        return self.used >= self.limit

    def open(self) -> bool:
        """May a packet be served in this period? (Per packet: cheap.) A refusal is
        counted; a packet that goes adds its bytes to `used` (the data path does, once
        accounting let it go too, so a client is not billed for one the quota dropped)."""
        if self.used >= self.limit:
            self.refused += 1
            return False
        return True

    def take(self, n: int) -> bool:
        """May `n` more bytes be served in this period? If so they are counted."""
        if not self.open():
            return False
        self.used += n
        return True

    def roll(self, *, wall: float, start: int, end: int) -> bool:
        """At `wall`, if the period has ended, start the given one from zero; True if so."""
        if wall < self.end:
            return False
        self.start, self.end, self.used = start, end, 0
        return True
