//! Sliding replay window of 8128 counters (RFC 6479), the same as
//! protocol/link/replay.py and wireguard-go's replay.go: a ring of 128 blocks of
//! 64 bits; `last` is the highest counter accepted so far. `accept` is called only
//! after a packet authenticated, so a forged counter never moves the window.
//! `accepted` counts what it accepted, so the counters below `last` it never saw are
//! datagrams the peer sent that have not arrived (`lost`), as in replay.py.

pub const BLOCK_BITS: u64 = 64;
pub const RING_BLOCKS: usize = 128;
pub const WINDOW: u64 = (RING_BLOCKS as u64 - 1) * BLOCK_BITS; // 8128

const BLOCK_SHIFT: u32 = 6;
const BIT_MASK: u64 = BLOCK_BITS - 1;
const RING_MASK: u64 = RING_BLOCKS as u64 - 1;

pub struct ReplayWindow {
    last: u64,
    accepted: u64,
    blocks: [u64; RING_BLOCKS],
}

impl ReplayWindow {
    pub fn new() -> Self {
        ReplayWindow { last: 0, accepted: 0, blocks: [0; RING_BLOCKS] }
    }

    /// (counters up to `last` never accepted, counters accepted).
    pub fn counts(&self) -> (u64, u64) {
        let lost = if self.accepted == 0 { 0 } else { self.last + 1 - self.accepted };
        (lost, self.accepted)
    }

    /// Would `counter` be accepted? Changes nothing.
    pub fn check(&self, counter: u64, limit: u64) -> bool {
        if counter >= limit {
            return false;
        }
        if counter > self.last {
            return true;
        }
        if self.last - counter > WINDOW {
            return false;
        }
        let block = ((counter >> BLOCK_SHIFT) & RING_MASK) as usize;
        (self.blocks[block] >> (counter & BIT_MASK)) & 1 == 0
    }

    /// Record `counter` if it is acceptable; return whether it was.
    pub fn accept(&mut self, counter: u64, limit: u64) -> bool {
        if counter >= limit {
            return false;
        }
        let block_index = counter >> BLOCK_SHIFT;
        if counter > self.last {
            let current = self.last >> BLOCK_SHIFT;
            let diff = (block_index - current).min(RING_BLOCKS as u64);
            for i in 1..=diff {
                self.blocks[((current + i) & RING_MASK) as usize] = 0;
            }
            self.last = counter;
        } else if self.last - counter > WINDOW {
            return false;
        }
        let slot = (block_index & RING_MASK) as usize;
        let bit = 1u64 << (counter & BIT_MASK);
        if self.blocks[slot] & bit != 0 {
            return false;
        }
        self.blocks[slot] |= bit;
        self.accepted += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_and_old_counters_are_refused() {
        let mut w = ReplayWindow::new();
        assert!(w.accept(0, u64::MAX));
        assert!(!w.accept(0, u64::MAX));
        assert!(w.accept(WINDOW + 10, u64::MAX));
        assert!(!w.check(9, u64::MAX));
        assert!(w.check(10, u64::MAX));
        assert!(!w.accept(5, 5));
    }

    #[test]
    fn what_never_arrived_is_counted_until_it_does() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.counts(), (0, 0));
        for c in [0, 1, 4, 5] {
            assert!(w.accept(c, u64::MAX));
        }
        assert_eq!(w.counts(), (2, 4)); // 2 and 3 skipped
        assert!(w.accept(3, u64::MAX)); // late
        assert!(!w.accept(3, u64::MAX)); // a replay counts nothing
        assert_eq!(w.counts(), (1, 5));
    }
}
