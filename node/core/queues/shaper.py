"""Pacing to a rate: a token bucket kept as one deadline, and a FIFO queue paced by it.

`TokenBucket` is the token bucket of RFC 2697 section 2 (one bucket of depth `burst`,
filled at `rate` bytes per second) written in its time form, the virtual-scheduling
algorithm (GCRA) of ITU-T I.371: instead of a token count it keeps `next_at`, the time
at which the bucket will hold no debt. A packet may leave when `now >= next_at`; leaving
moves the deadline on by its cost over the rate, starting from no earlier than
`now - burst / rate` (a full bucket):

    next_at = max(next_at, now - slack) + (size + per_packet_overhead) / rate

So a saturated bucket paces one packet per cost/rate seconds (no bursts beyond `burst`
bytes after an idle spell) and `next_at` is exactly when the next packet may leave: the
`get_timer` of whatever queue it paces. Each packet is charged `per_packet_overhead`
bytes on top of its size, since the outer headers, padding and tags the tunnel adds
count against the real uplink. The burst allowance is 2 MTU or 4 ms of the rate,
whichever is larger (a caller may give a longer `burst_time`, as share.py does: 20
ms for its rate and caps). CAKE holds 1 ms, but it runs in the kernel: this bucket is released by
a timer task in user space, which wakes a few milliseconds late on a busy machine, and
with 1 ms of allowance every late wake-up lost its capacity for good (40 Mbit/s shared
delivered 29-37 Mbit/s in test_share.py, 4 ms 36-38 on a slower host). The rate
may change at run time (`set_rate`): the debt or credit held is carried over in bytes.
A rate of None is unlimited: every packet may leave at once.

`Shaper` is the plain queue slot built on it: a FIFO, tail-dropped at a byte limit,
released at the bucket's pace. The per-client scheduler (share.py) uses the bucket
directly.
"""

from collections import deque
from collections.abc import Callable
from typing import TypeVar

from .base import QueueBase

T = TypeVar("T")

MTU = 1500  # bytes: the burst is at least 2 of these
BURST_TIME = 0.004  # seconds of the rate the burst holds at high rates
BURST_MTUS = 2
LIMIT = 1 << 21  # bytes a Shaper holds before it drops at the tail


class TokenBucket:
    __slots__ = ("burst_time", "mtu", "next_at", "per_byte", "per_packet_overhead", "rate", "slack")

    def __init__(
        self,
        rate: float | None,
        *,
        per_packet_overhead: int = 0,
        mtu: int = MTU,
        burst_time: float = BURST_TIME,
    ) -> None:
        if rate is not None and not rate > 0:
            raise ValueError(f"a rate must be positive bytes per second or None, not {rate}")
        self.per_packet_overhead = per_packet_overhead
        self.mtu = mtu
        self.burst_time = burst_time
        self.rate: float | None = None
        self.slack = 0.0  # seconds: the burst allowance as time
        self.per_byte = 0.0  # seconds one byte takes at the rate
        self.next_at = float("-inf")  # a full bucket
        self._set(rate)

    @property
    def burst(self) -> float:
        """Bytes that may leave back to back after an idle spell."""
        return 0.0 if self.rate is None else self.slack * self.rate

    def _set(self, rate: float | None) -> None:
        self.rate = rate
        if rate is None:
            self.slack = self.per_byte = 0.0
        else:
            self.slack = max(BURST_MTUS * self.mtu, rate * self.burst_time) / rate
            self.per_byte = 1.0 / rate

    def ready(self, now: float) -> bool:
        return self.rate is None or now >= self.next_at

    def consume(self, size: int, now: float) -> None:
        """Charge one packet of `size` bytes (the overhead is added here) leaving at `now`."""
        if self.rate is None:
            return
        start = now - self.slack
        next_at = self.next_at
        self.next_at = (next_at if next_at > start else start) + (
            size + self.per_packet_overhead
        ) * self.per_byte

    def set_rate(self, rate: float | None, *, now: float) -> None:
        """Change the rate, keeping the bytes of debt (or of credit, up to the new burst)."""
        if rate is not None and not rate > 0:
            raise ValueError(f"a rate must be positive bytes per second or None, not {rate}")
        old = self.rate
        if old is None or rate is None:
            self._set(rate)
            self.next_at = float("-inf")
            return
        start = now - self.slack
        credit = (now - max(self.next_at, start)) * old  # bytes; negative is debt
        self._set(rate)
        self.next_at = max(now - credit / rate, now - self.slack)


class Shaper(QueueBase[T]):
    """A FIFO paced by a TokenBucket; over `limit` bytes held, the arriving packet drops."""

    def __init__(
        self,
        deliver: Callable[[T, float], None],
        *,
        rate: float | None,
        per_packet_overhead: int = 0,
        mtu: int = MTU,
        limit: int = LIMIT,
    ) -> None:
        super().__init__(deliver)
        self.bucket = TokenBucket(rate, per_packet_overhead=per_packet_overhead, mtu=mtu)
        self.limit = limit
        self.backlog = 0  # bytes held
        self._queue: deque[tuple[T, int]] = deque()

    def set_rate(self, rate: float | None, *, now: float) -> None:
        self.bucket.set_rate(rate, now=now)
        self.release(now=now)

    def enqueue(self, item: T, key: bytes, size: int, now: float, /) -> None:
        bucket = self.bucket
        if not self._queue and (bucket.rate is None or now >= bucket.next_at):
            bucket.consume(size, now)
            self.deliver(item, now)
            return
        if self.backlog + size > self.limit:
            self.drops += 1
            return
        self._queue.append((item, size))
        self.backlog += size

    def release(self, *, now: float) -> None:
        queue = self._queue
        bucket = self.bucket
        while queue and (bucket.rate is None or now >= bucket.next_at):
            item, size = queue.popleft()
            self.backlog -= size
            bucket.consume(size, now)
            self.deliver(item, now)

    def get_timer(self) -> float | None:
        return self.bucket.next_at if self._queue else None

    def handle_timer(self, *, now: float) -> None:
        self.release(now=now)

    def __len__(self) -> int:
        return len(self._queue)

    def forget(self, key: bytes) -> None:
        pass  # one FIFO for everyone: nothing is kept per key
