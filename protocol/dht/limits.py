"""Rate limits on the queries strangers send us: a token bucket per source and one
over all of them.

A query is answered only if its source's bucket (SOURCE_BURST, refilled at
SOURCE_RATE per second, as libtorrent's per-IP limit of 5 queries a second) and the
node's total bucket (TOTAL_BURST, TOTAL_RATE) both have a token; the per-source
bucket is asked first, so a flooding source spends only its own tokens and the total
stays for everyone else. The per-source table is the link's handshake limiter
(protocol/link/ratelimiter.py: an IPv4 address or an IPv6 /64 per entry, idle
entries forgotten once their bucket is full again, at most MAX_SOURCES, the least
recently seen evicted and counted), so an eviction forgets nothing but a recent
flooder, whose next queries still meet the total bucket. Everything is driven by
`now`; nothing here does I/O.
"""

from dataclasses import dataclass

from ..link.ratelimiter import RateLimiter

SOURCE_RATE, SOURCE_BURST = 5.0, 25  # queries per second from one source
TOTAL_RATE, TOTAL_BURST = 200.0, 400.0  # queries per second answered in all
MAX_SOURCES = 1024


@dataclass(slots=True)
class Bucket:
    """A token bucket: full at the first `take`, then `rate` tokens a second up to
    `burst`."""

    rate: float
    burst: float
    tokens: float = -1.0
    at: float = 0.0

    def take(self, *, now: float) -> bool:
        if self.tokens < 0:
            self.tokens, self.at = self.burst, now
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class QueryLimits:
    def __init__(self, *, max_sources: int = MAX_SOURCES) -> None:
        idle = SOURCE_BURST / SOURCE_RATE  # a source idle this long has a full bucket
        self.sources = RateLimiter(
            rate=SOURCE_RATE, burst=SOURCE_BURST, idle=idle, max_entries=max_sources
        )
        self.total = Bucket(TOTAL_RATE, TOTAL_BURST)

    @property
    def evicted(self) -> int:
        return self.sources.evicted

    def refusal(self, ip: str, *, now: float) -> str | None:
        """None if a query from `ip` may be answered now, else the drop reason."""
        if not self.sources.allow(ip, now=now):
            return "query_rate_limited_source"
        if not self.total.take(now=now):
            return "query_rate_limited_total"
        return None
