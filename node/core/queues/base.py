"""The queue slot between routing and encryption (outbound) or the TUN (inbound).

The data path puts every packet that passed routing, policy and credit into a queue,
and the queue hands packets on to `deliver(item, now)` when they may leave: at once, or later
from `release` (after each batch) or `handle_timer` (from the node's one timer task),
which is where a shaper paces and an AQM drops. One small module per algorithm behind
this interface, as aioquic's congestion controllers and Linux's qdiscs: `passthrough`
first; a shaper, per-client deficit round robin and FQ-CoDel come with the congestion
control work.

`enqueue` is called per packet, so its arguments are positional: the item (opaque to
the queue), the key it is scheduled by (the client's public key), its size in bytes
(what a rate counts) and `now`.
"""

from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)


class Queue(Protocol[T_contra]):
    drops: int

    def enqueue(self, item: T_contra, key: bytes, size: int, now: float, /) -> None: ...

    def release(self, *, now: float) -> None:
        """After a batch: deliver what may leave now."""
        ...

    def get_timer(self) -> float | None: ...

    def handle_timer(self, *, now: float) -> None: ...

    def __len__(self) -> int:
        """Packets held."""
        ...

    def forget(self, key: bytes) -> None:
        """A peer is gone: drop what it has queued and its state."""
        ...


class QueueBase(Generic[T]):
    def __init__(self, deliver: Callable[[T, float], None]) -> None:
        self.deliver = deliver
        self.drops = 0
