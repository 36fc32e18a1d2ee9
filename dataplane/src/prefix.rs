//! Cryptokey routing's prefix table, as node/core/routing/allowed_ips.py keeps it: per
//! family one map per prefix length (network -> peer id), looked up longest first. The
//! receive thread checks an inner source against it; Python installs it whole.

use std::collections::HashMap;

#[derive(Default)]
pub struct Family {
    bits: u32,
    by_length: Vec<(u32, HashMap<u128, u32>)>, // longest first
}

impl Family {
    fn new(bits: u32) -> Self {
        Family { bits, by_length: Vec::new() }
    }

    fn mask(&self, addr: u128, length: u32) -> u128 {
        if length == 0 {
            0
        } else {
            let shift = self.bits - length;
            (addr >> shift) << shift
        }
    }

    fn insert(&mut self, net: u128, length: u32, peer: u32) {
        let net = self.mask(net, length);
        match self.by_length.iter_mut().find(|(l, _)| *l == length) {
            Some((_, table)) => {
                table.insert(net, peer);
            }
            None => {
                let mut table = HashMap::new();
                table.insert(net, peer);
                self.by_length.push((length, table));
                self.by_length.sort_by_key(|e| std::cmp::Reverse(e.0)); // longest first
            }
        }
    }

    pub fn lookup(&self, addr: u128) -> Option<u32> {
        self.by_length
            .iter()
            .find_map(|(length, table)| table.get(&self.mask(addr, *length)).copied())
    }
}

pub struct Prefixes {
    pub v4: Family,
    pub v6: Family,
}

impl Prefixes {
    pub fn new() -> Self {
        Prefixes { v4: Family::new(32), v6: Family::new(128) }
    }

    /// Add `net`/`length` for `peer`; false if the length does not fit the family.
    pub fn insert(&mut self, version: u8, net: u128, length: u32, peer: u32) -> bool {
        let family = match version {
            4 if length <= 32 && net >> 32 == 0 => &mut self.v4,
            6 if length <= 128 => &mut self.v6,
            _ => return false,
        };
        family.insert(net, length, peer);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_prefix_wins() {
        let mut p = Prefixes::new();
        assert!(p.insert(4, 0, 0, 1));
        assert!(p.insert(4, 0x0a00_0000, 8, 2));
        assert!(p.insert(4, 0x0a00_0100, 24, 3));
        assert_eq!(p.v4.lookup(0x0a00_0105), Some(3));
        assert_eq!(p.v4.lookup(0x0a01_0105), Some(2));
        assert_eq!(p.v4.lookup(0x0b00_0000), Some(1));
        assert_eq!(p.v6.lookup(1), None);
        assert!(!p.insert(4, 0, 33, 1));
    }
}
