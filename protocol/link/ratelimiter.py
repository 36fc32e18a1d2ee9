"""A token bucket per source address for handshake messages (wireguard-go ratelimiter/).

The cookie (cookie.py) proves only that a sender can receive at its address; anyone at a
real address can decrypt its cookie reply and put a valid mac2 on every initiation. So,
under load, a handshake message with a valid mac2 still needs its source's bucket to
allow it before the Diffie-Hellman, and a cookie reply needs one too (a limiter of its
own) so the node answers no flood faster than a trickle.

Each source has a bucket of at most `burst` tokens that refills at `rate` tokens a second;
a message takes one token or is refused. A new source starts full (its first message
takes one). IPv4 sources are keyed by the whole address, IPv6 ones by their /64 (one
host owns a /64 and can pick any address in it); an IPv4-mapped IPv6 address counts as
its IPv4 address. Entries idle for more than `idle` seconds are full again anyway, so a
sweep at most once every `idle` seconds, driven by the `now` of the calls, forgets them
(oldest first, stopping at the first fresh one).
The table holds at most `max_entries` sources: a new one past that evicts the least
recently seen (which only ever gives that source a fresh bucket when it comes back).
"""

import ipaddress
from collections import OrderedDict

RATE = 20.0  # handshakes a second per source (wireguard-go packetsPerSecond)
BURST = 5  # handshakes at once per source (packetsBurstable)
IDLE = 1.0  # seconds before an idle entry is forgotten (garbageCollectTime)
MAX_ENTRIES = 8192  # sources tracked at once (the Linux module's bound)


def source_key(address: str) -> str:
    """The bucket a source address belongs to: itself for IPv4, its /64 for IPv6."""
    if ":" not in address:
        return address
    try:
        ip = ipaddress.IPv6Address(address.split("%", 1)[0])
    except ValueError:
        return address
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return ip.packed[:8].hex() + "::/64"


class RateLimiter:
    """`allow(address, now=)`: may one more handshake message from `address` be processed?"""

    def __init__(
        self,
        *,
        rate: float = RATE,
        burst: int = BURST,
        idle: float = IDLE,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.idle = idle
        self.max_entries = max_entries
        # key -> [tokens, last seen]; ordered from least to most recently seen
        self._table: OrderedDict[str, list[float]] = OrderedDict()
        self._last_sweep = float("-inf")
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._table)

    def allow(self, address: str, *, now: float) -> bool:
        if now - self._last_sweep >= self.idle:
            self._sweep(now=now)
        key = source_key(address)
        entry = self._table.get(key)
        if entry is None:
            if len(self._table) >= self.max_entries:
                self._table.popitem(last=False)
                self.evicted += 1
            self._table[key] = [self.burst - 1.0, now]
            return True
        self._table.move_to_end(key)
        tokens = min(self.burst, entry[0] + max(0.0, now - entry[1]) * self.rate)
        entry[1] = now
        # a hair of tolerance: 0.05 s at 20/s is 1.0000000000000002 tokens or 0.9999999999999998
        if tokens >= 1.0 - 1e-9:
            entry[0] = tokens - 1.0
            return True
        entry[0] = tokens
        return False

    def _sweep(self, *, now: float) -> None:
        self._last_sweep = now
        table = self._table
        while table:  # least recently seen first: stop at the first one still fresh
            key, (_, last) = next(iter(table.items()))
            if now - last <= self.idle:
                break
            del table[key]
