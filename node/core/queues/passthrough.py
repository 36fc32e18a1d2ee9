"""The pass-through queue: every packet is delivered the moment it is enqueued.

It holds nothing, drops nothing and has no deadline: the behaviour of a node without
congestion control, and the reference the shaping queues are measured against.
"""

from collections.abc import Callable
from typing import TypeVar

from .base import QueueBase

T = TypeVar("T")


class PassThrough(QueueBase[T]):
    def __init__(self, deliver: Callable[[T, float], None]) -> None:
        super().__init__(deliver)

    def enqueue(self, item: T, key: bytes, size: int, now: float, /) -> None:
        self.deliver(item, now)

    def release(self, *, now: float) -> None:
        pass

    def get_timer(self) -> float | None:
        return None

    def handle_timer(self, *, now: float) -> None:
        pass

    def __len__(self) -> int:
        return 0

    def forget(self, key: bytes) -> None:
        pass
