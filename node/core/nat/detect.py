"""Are we behind a NAT? A peer's NAT_OBSERVED says where our packets came from as it
saw them; if that is none of our own (address, port) pairs, something on the way
rewrote them, and a mapping that carries no traffic expires (often within 30 s for
UDP): the shell then gives peers persistent keepalive (KEEPALIVE) unless their
configuration sets it. One peer's word is enough to turn keepalives on (a liar costs
us a datagram every 25 s and nothing else); the last word of every peer is kept, at
most MAX_REPORTS of them, and `behind` is true while any of them says so.
"""

from collections import Counter

from tidewire.protocol.types import Endpoint

from .bounds import refusal

KEEPALIVE = 25  # s: under the shortest common UDP mapping timeout (RFC 4787 REQ-5: >= 120 s
# is required, but home routers keep 30 s), and wireguard-go's documented choice
MAX_REPORTS = 64


class Detector:
    def __init__(self, *, local: set[Endpoint]) -> None:
        self.local = local  # our own addresses with the port the peers reach us on
        self.reports: dict[bytes, bool] = {}  # peer -> "you are behind a NAT"
        self.counters: Counter[str] = Counter()

    @property
    def behind(self) -> bool:
        return any(self.reports.values())

    def observed(self, peer_key: bytes, endpoint: Endpoint) -> bool:
        """A peer's report; True if it turned `behind` on."""
        reason = refusal(endpoint)
        if reason is not None:
            self.counters[f"observed_refused_{reason}"] += 1
            return False
        if peer_key not in self.reports and len(self.reports) >= MAX_REPORTS:
            del self.reports[next(iter(self.reports))]
        was = self.behind
        self.reports[peer_key] = endpoint not in self.local
        self.counters["observed"] += 1
        if self.behind and not was:
            self.counters["behind_nat_detected"] += 1
            return True
        return False

    def forget(self, peer_key: bytes) -> None:
        self.reports.pop(peer_key, None)


def keepalive(*, configured: int | None, behind: bool, automatic: int = KEEPALIVE) -> int:
    """A peer's persistent keepalive: its configured value if it has one, else
    `automatic` (0: off) behind a NAT, else off."""
    if configured is not None:
        return configured
    return automatic if behind else 0
