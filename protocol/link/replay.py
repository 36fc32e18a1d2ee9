"""Sliding replay window of 8128 counters (RFC 6479, sized as wireguard-go's replay.go).

A ring of 128 blocks of 64 bits. `last` is the highest counter accepted so far;
moving it forward clears the blocks it passes over. A counter is accepted if it
is below the limit, not already seen, and no more than 8128 behind `last`.
Call `accept` only after the packet has authenticated, so forged counters can
never move the window.

`accepted` counts the counters accepted: below `last`, the rest are datagrams the peer
sent that have not arrived (`lost`; a late one that arrives takes its count back), the
path's loss as the sender's own numbering shows it (the receipts allow for it,
node/core/accounting.py).
"""

from .constants import REPLAY_BLOCK_BITS, REPLAY_RING_BLOCKS, REPLAY_WINDOW

_BLOCK_SHIFT = REPLAY_BLOCK_BITS.bit_length() - 1  # 6
_BIT_MASK = REPLAY_BLOCK_BITS - 1
_RING_MASK = REPLAY_RING_BLOCKS - 1


class ReplayWindow:
    __slots__ = ("accepted", "blocks", "last")

    def __init__(self) -> None:
        self.last = 0
        self.accepted = 0
        self.blocks = [0] * REPLAY_RING_BLOCKS

    @property
    def lost(self) -> int:
        """Counters up to `last` never accepted: sent by the peer, not (yet) arrived."""
        return self.last + 1 - self.accepted if self.accepted else 0

    def check(self, counter: int, limit: int) -> bool:
        """Would `counter` be accepted? Changes nothing."""
        if counter >= limit:
            return False
        if counter > self.last:
            return True
        if self.last - counter > REPLAY_WINDOW:
            return False
        block = (counter >> _BLOCK_SHIFT) & _RING_MASK
        return not (self.blocks[block] >> (counter & _BIT_MASK)) & 1

    def accept(self, counter: int, limit: int) -> bool:
        """Record `counter` if it is acceptable; return whether it was."""
        if counter >= limit:
            return False
        block_index = counter >> _BLOCK_SHIFT
        if counter > self.last:
            current = self.last >> _BLOCK_SHIFT
            diff = min(block_index - current, REPLAY_RING_BLOCKS)
            blocks = self.blocks
            for i in range(1, diff + 1):
                blocks[(current + i) & _RING_MASK] = 0
            self.last = counter
        elif self.last - counter > REPLAY_WINDOW:
            return False
        slot = block_index & _RING_MASK
        bit = 1 << (counter & _BIT_MASK)
        if self.blocks[slot] & bit:
            return False
        self.blocks[slot] |= bit
        self.accepted += 1
        return True
