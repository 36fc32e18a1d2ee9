"""Benchmark: what the queues of node/core/queues add per packet, in Python, no root needed.

For each queue, N packets of 1500 bytes from 8 clients (4 inner flows each) are enqueued
in batches of 64, each batch followed by `release`, as the data path does; then the
batch's time on the wire passes at 1 Gbit/s and the timer fires once, which lets out
what the pacer allows (the burst of 4 ms covers one batch, 0.8 ms). The figure is wall
time per packet for enqueue + dequeue (deliver is a no-op), minus nothing: PassThrough
is measured alongside as the floor of the interface itself. Offered at the rate, most
packets take the idle path (nothing queued, the burst allows them); offered 5% over
it, a standing queue forms once the 5% excess has used up the burst (after about 6,000
packets) and from then on every packet goes through DRR, FQ-CoDel and CoDel.

Each Share case runs on both classes in one run: share.Share (Python, the reference) and,
when the module is built, tidewire._dataplane.Share (dataplane/src/queue/), which reads the
`(peer, packet)` items by shape, as node/sharing.py builds it.

    .venv/bin/python netns-lab/bench_queues.py [--packets 200000]
"""

import argparse
import time
from collections.abc import Callable
from importlib import import_module
from typing import Any

from tidewire.node.core.queues import PassThrough, Shaper, Share
from tidewire.node.core.queues.base import Queue

BATCH = 64
RATE = 125e6  # bytes per second: 1 Gbit/s


def packet(sport: int) -> bytes:
    header = bytes.fromhex("450005dc000040004011") + bytes(2) + bytes([10, 0, 0, 2, 192, 0, 2, 1])
    return header + sport.to_bytes(2, "big") + b"\x00\x35" + bytes(1476)


def run(
    make: Callable[[Callable[[Any, float], None]], Queue[Any]], n: int, load: float = 1.0
) -> tuple[float, int]:
    delivered = 0

    def deliver(item: Any, now: float) -> None:
        nonlocal delivered
        delivered += 1

    queue = make(deliver)
    keys = [bytes([k]) * 32 for k in range(8)]
    items = [(k, (None, packet(1000 + 4 * k + f))) for k in range(8) for f in range(4)]
    now = 0.0
    start = time.perf_counter()
    i = 0
    while i < n:
        for j in range(BATCH):
            k, item = items[(i + j) % len(items)]
            queue.enqueue(item, keys[k], 1500, now)
        i += BATCH
        queue.release(now=now)
        # the batch's wire time passes, then the timer fires once, as the node's does
        now += BATCH * 1560 / RATE / load
        if (timer := queue.get_timer()) is not None:
            queue.handle_timer(now=max(now, timer))
    elapsed = time.perf_counter() - start
    return elapsed / n * 1e6, delivered + queue.drops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=200_000)
    args = parser.parse_args()

    try:
        Native = import_module("tidewire._dataplane").Share
    except (ImportError, AttributeError):
        Native = None
    classes: list[tuple[str, Any]] = [("python", Share)]
    if Native is not None:
        classes.append(("native", Native))

    def share(cls: Any, rate: float | None) -> Callable[[Callable[[Any, float], None]], Queue[Any]]:
        return lambda deliver: cls(
            deliver,
            packet_of=lambda item: item[1],
            with_packet=lambda item, p: (item[0], p),
            rate=rate,
            seed=1,
            per_packet_overhead=60,
            **({"shape": "pair"} if cls is Native else {}),
        )

    runs: list[tuple[str, Callable[[Callable[[Any, float], None]], Queue[Any]], float]] = [
        ("passthrough", PassThrough, 1.0),
        ("shaper 1 Gbit/s", lambda deliver: Shaper(deliver, rate=RATE), 1.0),
    ]
    for kind, cls in classes:
        runs += [
            (f"share[{kind}] unlimited (idle path)", share(cls, None), 1.0),
            (f"share[{kind}] 1 Gbit/s (queued: DRR + FQ-CoDel + pacer)", share(cls, RATE), 1.0),
            (
                f"share[{kind}] 1 Gbit/s offered 1.05x (all through FQ-CoDel)",
                share(cls, RATE),
                1.05,
            ),
        ]
    floor = None
    for name, make, load in runs:
        best = min(run(make, args.packets, load)[0] for _ in range(3))
        floor = best if floor is None else floor
        print(f"{name:60} {best:6.2f} us/packet   (+{best - floor:5.2f} over passthrough)")


if __name__ == "__main__":
    main()
