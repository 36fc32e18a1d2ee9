"""The data path's queue slots while the native threads hold [share]'s queues (issue 17).

The threads queue what they carry in their own ThreadShare (dataplane/src/queue/held.rs).
Packets that take the Python path on such a node (a stream skin's peer, a provider's
client counted packet by packet, a hand-back: SYNs, fragments, a peer between installs)
must share that queue's pacer, per-client caps and fairness, or a TLS client would get
past the configured rate. So the slots hold a `ThreadSlot` over the same ThreadShare:
a packet that may go at once is delivered here, as the Python queues do; one that has
to wait stays in the threads' queue, and when it leaves the receive thread writes it to
the TUN itself, the send thread hands it back by peer id (`Outbound.take_shaped`), and
node/dataplane_send.py sends it without queueing it again.
"""

from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class ThreadSlot(Generic[T]):
    def __init__(
        self,
        share: Any,
        deliver: Callable[[T, float], None],
        *,
        packet_of: Callable[[T], bytes],
        peer_id: Callable[[T], int],
    ) -> None:
        self.share = share  # the threads' ThreadShare for this direction
        self.deliver = deliver
        self.packet_of = packet_of
        self.peer_id = peer_id
        self.drops = 0  # the queue's are ThreadShare's (`Sharing.status` reads them)

    def enqueue(self, item: T, key: bytes, size: int, now: float, /) -> None:
        if self.share.enqueue_packet(self.packet_of(item), key, size, self.peer_id(item)):
            self.deliver(item, now)

    def release(self, *, now: float) -> None:
        pass  # the threads let the queue's packets go, on its timer

    def get_timer(self) -> float | None:
        return None

    def handle_timer(self, *, now: float) -> None:
        pass

    def __len__(self) -> int:
        return len(self.share)

    def forget(self, key: bytes) -> None:
        """A peer is gone: its client in the threads' queue too."""
        self.share.forget(key)
