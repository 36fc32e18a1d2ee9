"""Virtual time for the queues of node/core/queues: packets to feed them and a driver that runs
them as the node does.

The driver takes arrivals `(time, item, key, size)` and plays them in time order: the
arrivals of one instant are one batch (enqueue each, then `release`), and between
batches the timer fires whenever the queue's `get_timer` comes first (`handle_timer` at
exactly that time), as the node's one timer task does. Nothing sleeps.
"""

import struct
from collections.abc import Callable, Iterable
from typing import Any

from tidewire.node.core.queues.base import Queue

Arrival = tuple[float, Any, bytes, int]


def ipv4(
    *,
    src: str = "10.0.0.1",
    dst: str = "192.0.2.1",
    proto: int = 17,
    sport: int = 1000,
    dport: int = 53,
    size: int = 1500,
    tos: int = 0,
    frag: int = 0,
) -> bytes:
    """An IPv4 packet of `size` bytes with a valid header checksum and a transport header
    holding the two ports (the rest zeros)."""
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        tos,
        size,
        0,
        frag,
        64,
        proto,
        0,
        bytes(int(x) for x in src.split(".")),
        bytes(int(x) for x in dst.split(".")),
    )
    words = sum(struct.unpack("!10H", header))
    while words >> 16:
        words = (words & 0xFFFF) + (words >> 16)
    header = header[:10] + struct.pack("!H", ~words & 0xFFFF) + header[12:]
    body = struct.pack("!HH", sport, dport)
    return header + body + bytes(max(0, size - 24))


def ipv6(
    *,
    src: int = 1,
    dst: int = 2,
    proto: int = 17,
    sport: int = 1000,
    dport: int = 53,
    size: int = 1500,
    tclass: int = 0,
) -> bytes:
    first = 6 << 28 | tclass << 20
    header = struct.pack(
        "!IHBB16s16s",
        first,
        size - 40,
        proto,
        64,
        (0xFD00 << 112 | src).to_bytes(16, "big"),
        (0xFD00 << 112 | dst).to_bytes(16, "big"),
    )
    return header + struct.pack("!HH", sport, dport) + bytes(max(0, size - 44))


def cbr(
    *,
    start: float,
    stop: float,
    rate: float,
    size: int,
    key: bytes,
    item: Callable[[float], Any],
) -> list[Arrival]:
    """Constant bit rate: a packet of `size` bytes every size/rate seconds in [start, stop)."""
    gap = size / rate
    out = []
    n = 0
    while (t := start + n * gap) < stop:
        out.append((t, item(t), key, size))
        n += 1
    return out


def constant(item: Any) -> Callable[[float], Any]:
    """An item maker for `cbr` that gives the same item at every time."""
    return lambda t: item


class Driver:
    """Plays arrivals into a queue in time order, firing its timer in between."""

    def __init__(self, queue: Queue[Any], *, late: float = 0.0) -> None:
        self.queue = queue
        self.late = late  # seconds each timer wake-up comes after its deadline (a busy host)
        self.now = 0.0
        self.wakeups = 0
        self.batches = 0

    def run(self, arrivals: Iterable[Arrival], *, until: float) -> None:
        pending = sorted(arrivals, key=lambda a: a[0])
        queue = self.queue
        i = 0
        n = len(pending)
        stalled = 0
        while True:
            timer = queue.get_timer()
            if timer is not None:
                timer += self.late
            arrival = pending[i][0] if i < n else float("inf")
            if timer is not None and timer <= arrival and timer <= until:
                now = max(timer, self.now)
                stalled = stalled + 1 if now == self.now else 0
                assert stalled < 10_000, f"the queue's timer does not move on from {now}"
                self.now = now
                self.wakeups += 1
                queue.handle_timer(now=now)
            elif arrival <= until:
                self.now = now = arrival
                while i < n and pending[i][0] == now:
                    _, item, key, size = pending[i]
                    queue.enqueue(item, key, size, now)
                    i += 1
                self.batches += 1
                queue.release(now=now)
            else:
                break
        self.now = max(self.now, until)
