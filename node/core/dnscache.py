"""The provider resolver's memory: a bounded answer cache and a per-client rate limit.

`AnswerCache` keeps upstream answers keyed by (qname, qtype, qclass, CD, DO)
(`dnsmsg.Query.key`: an answer without DNSSEC records is never served to a query
that set DO, nor one an upstream validated to a query that set CD) for their
smallest TTL (RFC 1035 section 3.2.1; capped at MAX_TTL, and answers with no TTL
to go by, truncated ones and SERVFAILs are not kept) and hands them back with
their TTLs counted down, least recently used first out when full. `ClientLimiter`
is a token bucket per client address (RATE queries a second, BURST at once); it
forgets the least recently seen client when it holds MAX_CLIENTS, so a spoofing
flood costs bounded memory (and a forgotten client starts with a full bucket).
Time is an argument: `now` in seconds.
"""

from collections import OrderedDict

from .dnsmsg import NOERROR, NXDOMAIN, Response, age

MAX_TTL = 86400  # seconds; an upstream's week-long TTL is not trusted for that long
MAX_ENTRIES = 4096
RATE = 50.0  # queries a second per client: a browser opening a busy page stays under it
BURST = 100.0
MAX_CLIENTS = 4096

Key = tuple[bytes, int, int, bool, bool]  # qname, qtype, qclass, CD, DO


class AnswerCache:
    def __init__(self, *, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Key, tuple[bytes, tuple[int, ...], float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, key: Key, message: bytes, response: Response, *, now: float) -> bool:
        """Keep `message` if it may be cached; True if it was."""
        ttl = response.min_ttl
        if response.truncated or response.rcode not in (NOERROR, NXDOMAIN) or not ttl:
            return False
        self._entries[key] = (message, response.ttl_offsets, now, now + min(ttl, MAX_TTL))
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return True

    def get(self, key: Key, *, now: float) -> bytes | None:
        """The cached answer with its TTLs counted down, or None (expired ones go)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        message, offsets, stored, expires = entry
        if now >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return age(message, offsets, int(now - stored))


class ClientLimiter:
    def __init__(
        self, *, rate: float = RATE, burst: float = BURST, max_clients: int = MAX_CLIENTS
    ) -> None:
        self.rate, self.burst, self.max_clients = rate, burst, max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, time

    def allow(self, client: str, *, now: float) -> bool:
        """Take one token from `client`'s bucket; False if it has none."""
        tokens, then = self._buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - then) * self.rate)
        ok = tokens >= 1.0
        self._buckets[client] = (tokens - 1.0 if ok else tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return ok
