"""Firing a peer's expired timers (wireguard-go's device/timers.go expiry functions).

retransmit      no response 5 s (+ up to 333 ms jitter) after an initiation:
                retry, and give up after 18 retries (90 s), dropping staged packets
send_keepalive  data received and nothing sent back for 10 s: passive keepalive
new_handshake   data sent and nothing authenticated received for 15 s: new handshake
zero_keys       540 s after the last session was derived: erase all keys
persistent      the configured interval after any authenticated packet: keepalive
"""

import heapq
from enum import Enum

from .constants import MAX_TIMER_HANDSHAKES
from .peer import Peer


class TimerQueue:
    """Peers by their earliest deadline, in a heap with lazy deletion, so that finding
    the next deadline costs O(log peers) per change instead of a scan of every peer.

    Every timer set goes through `Peer.arm`, which appends the peer to `rearmed` when its
    deadline moved earlier than the one it is queued under. Deadlines that moved later or
    were cleared are found when their entry reaches the top and is checked again.
    """

    def __init__(self) -> None:
        self.heap: list[tuple[float, int, Peer]] = []
        self.seq = 0
        self.rearmed: list[Peer] = []

    def _push(self, deadline: float, peer: Peer) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (deadline, self.seq, peer))

    def earliest(self, peers: dict[bytes, Peer]) -> float | None:
        """The earliest deadline of the peers in `peers` (the device's), or None."""
        heap = self.heap
        for peer in self.rearmed:
            if peer.queued_deadline is not None:
                self._push(peer.queued_deadline, peer)
        self.rearmed.clear()
        while heap:
            t, _, peer = heap[0]
            if peers.get(peer.public_key) is not peer or peer.queued_deadline != t:
                heapq.heappop(heap)  # a removed peer, or superseded by an earlier entry
                continue
            deadline = peer.next_deadline()
            if deadline == t:
                return t
            heapq.heappop(heap)  # its timers moved later or were cleared: queue it anew
            peer.queued_deadline = deadline
            if deadline is not None:
                self._push(deadline, peer)
        return None

    def pop_due(self, peers: dict[bytes, Peer], *, now: float) -> list[Peer]:
        """Take out every peer with a deadline at or before `now`; the caller fires their
        timers and re-arms what is left (`Peer.arm`)."""
        due: list[Peer] = []
        while (t := self.earliest(peers)) is not None and t <= now:
            peer = heapq.heappop(self.heap)[2]
            peer.queued_deadline = None
            due.append(peer)
        return due


class Expired(Enum):
    """What an expired timer asks the device to do."""

    RETRANSMIT = "retransmit"  # send the initiation again
    GAVE_UP = "gave_up"  # 18 retries without a response: drop staged packets
    KEEPALIVE = "keepalive"  # a passive keepalive
    NEW_HANDSHAKE = "new_handshake"  # silence after data sent: a new handshake
    ZERO_KEYS = "zero_keys"  # erase every key
    PERSISTENT_KEEPALIVE = "persistent_keepalive"


def expire(peer: Peer, *, now: float) -> list[Expired]:
    """Clear the peer's timers that are due at `now` and return what each asks for, in
    wireguard-go's order; the device carries the actions out (Device.handle_timer)."""
    due: list[Expired] = []
    if peer.retransmit is not None and peer.retransmit <= now:
        peer.retransmit = None
        if peer.handshake_attempts > MAX_TIMER_HANDSHAKES:
            due.append(Expired.GAVE_UP)
        else:
            peer.handshake_attempts += 1
            due.append(Expired.RETRANSMIT)
    if peer.send_keepalive is not None and peer.send_keepalive <= now:
        peer.send_keepalive = None
        due.append(Expired.KEEPALIVE)
    if peer.new_handshake is not None and peer.new_handshake <= now:
        peer.new_handshake = None
        due.append(Expired.NEW_HANDSHAKE)
    if peer.zero_keys is not None and peer.zero_keys <= now:
        peer.zero_keys = None
        due.append(Expired.ZERO_KEYS)
    if peer.persistent_keepalive_at is not None and peer.persistent_keepalive_at <= now:
        peer.persistent_keepalive_at = None
        if peer.persistent_keepalive > 0:
            due.append(Expired.PERSISTENT_KEEPALIVE)
    return due
