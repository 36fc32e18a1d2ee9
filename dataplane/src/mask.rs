//! The masked skin's transport datagrams in the threads (issue 17), as
//! protocol/skins/masked.py wraps and unwraps them: the 16-byte header is WireGuard's
//! with its three reserved bytes replaced by the datagram's length (little-endian),
//! XORed with AES-128-ECB(hp_key, sample), where the sample is the 16 bytes after the
//! header (the first of the AEAD's ciphertext, or its tag for a keepalive); RFC 9001
//! section 5.4.3's header protection. Padding: random bytes up to a wire size drawn
//! from the weighted ranges (`Padding`), never below the datagram's own size.
//!
//! Only transport datagrams are handled here. Handshake wrappers are the Python skin's
//! (the caller hands the wire bytes back); decoys and whatever unmasks to nothing under
//! every key the skin would try are dropped by the caller, counted as the skin's opener
//! counts them (`is_decoy`), so a flood of garbage on a masked port costs no Python, and
//! the threads never answer a prober either.

use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockEncrypt, KeyInit};
use aes::Aes128;
use chacha20::cipher::{KeyIvInit, StreamCipher};
use chacha20::ChaCha20;

use crate::sys;
use crate::transport::{HEADER_SIZE, MESSAGE_TRANSPORT, TAG_SIZE};

pub const SAMPLE_SIZE: usize = 16;
const KEEPALIVE_SIZE: usize = HEADER_SIZE + TAG_SIZE; // 32: the smallest transport datagram
const MAX_LENGTH: usize = 0xFF_FFFF; // three bytes of length (a debug check of `wrap`)

const TYPE_DECOY: u8 = 0; // protocol/skins/masked.py's

/// What one unmasking found.
#[derive(Debug, PartialEq, Eq)]
pub enum Unmasked {
    Transport(usize), // a transport datagram of this length, its header now plain
    Handshake,        // types 1-3: a wrapper for the Python skin to open
    Nothing,          // a decoy, or no datagram under this key
}

/// One listener key's header protection.
pub struct Mask {
    aes: Aes128,
}

impl Mask {
    pub fn new(hp_key: &[u8; 16]) -> Self {
        Mask { aes: Aes128::new(GenericArray::from_slice(hp_key)) }
    }

    fn mask(&self, sample: &[u8]) -> [u8; 16] {
        let mut block = GenericArray::clone_from_slice(&sample[..SAMPLE_SIZE]);
        self.aes.encrypt_block(&mut block);
        block.into()
    }

    /// Does `d` unmask to a decoy's type byte under this key? (The skin's `is_decoy`:
    /// random bytes do one time in 256; only for counting what no key took.)
    pub fn is_decoy(&self, d: &[u8]) -> bool {
        d.len() >= HEADER_SIZE + SAMPLE_SIZE && d[0] ^ self.mask(&d[HEADER_SIZE..])[0] == TYPE_DECOY
    }

    /// Unmask `d` (a wire datagram) in place if it is a transport datagram under this
    /// key: its header becomes WireGuard's again and the datagram is `d[..length]`
    /// (the padding after it is left). Otherwise `d` is left as it was.
    pub fn unwrap(&self, d: &mut [u8]) -> Unmasked {
        if d.len() < HEADER_SIZE + SAMPLE_SIZE {
            return Unmasked::Nothing;
        }
        let m = self.mask(&d[HEADER_SIZE..]);
        let kind = d[0] ^ m[0];
        let length = usize::from(d[1] ^ m[1]) | usize::from(d[2] ^ m[2]) << 8 | usize::from(d[3] ^ m[3]) << 16;
        match kind {
            4 if (KEEPALIVE_SIZE..=d.len()).contains(&length) => {
                d[..4].copy_from_slice(&MESSAGE_TRANSPORT.to_le_bytes());
                for (b, k) in d[4..HEADER_SIZE].iter_mut().zip(&m[4..]) {
                    *b ^= k;
                }
                Unmasked::Transport(length)
            }
            1..=3 => Unmasked::Handshake,
            _ => Unmasked::Nothing,
        }
    }

    /// Mask the transport datagram `d` (exactly one, sealed) in place.
    pub fn wrap(&self, d: &mut [u8]) {
        debug_assert!(d.len() >= KEEPALIVE_SIZE && d.len() <= MAX_LENGTH);
        let n = d.len() as u32;
        d[1..4].copy_from_slice(&n.to_le_bytes()[..3]);
        let m = self.mask(&d[HEADER_SIZE..]);
        for (b, k) in d[..HEADER_SIZE].iter_mut().zip(&m) {
            *b ^= k;
        }
    }
}

/// What a sender on a masked path wraps with: its listener's key and the padding.
pub struct Skin {
    pub mask: Mask,
    pub padding: Padding,
}

/// Wire sizes to pad to: (low, high, weight) ranges, as the skin's `PaddingSizes`.
pub struct Padding {
    pub ranges: Vec<(usize, usize, u64)>,
}

impl Padding {
    /// The ranges, if they hold what `draw` relies on (some range, low <= high, a weight
    /// in each, a total weight in 64 bits); the skin's `PaddingSizes.parse` has checked the policy (the bounds).
    pub fn new(ranges: Vec<(usize, usize, u64)>) -> Option<Padding> {
        let sound = ranges.iter().all(|&(low, high, weight)| low <= high && weight > 0);
        let total = ranges.iter().try_fold(0u64, |sum, r| sum.checked_add(r.2));
        (sound && !ranges.is_empty() && total.is_some()).then_some(Padding { ranges })
    }

    /// A wire size for a datagram of `need` bytes: among the ranges whose high reaches
    /// `need`, one by weight, then a size uniformly in [max(low, need), high]; `need`
    /// itself if no range reaches it (PaddingSizes.draw, from the same 8 random bytes).
    pub fn draw(&self, need: usize, r: u64) -> usize {
        let total: u64 = self.ranges.iter().filter(|x| x.1 >= need).map(|x| x.2).sum();
        if total == 0 {
            return need;
        }
        let mut pick = (r & 0xFFFF_FFFF) % total;
        for &(low, high, weight) in self.ranges.iter().filter(|x| x.1 >= need) {
            if pick < weight {
                let low = low.max(need);
                return low + ((r >> 32) % (high - low + 1) as u64) as usize;
            }
            pick -= weight;
        }
        need // unreachable: pick < total
    }
}

/// The padding's bytes and draws: ChaCha20's keystream under a key from getrandom(2),
/// taken in blocks of BUFFER bytes and rekeyed every REKEY bytes.
pub struct Rng {
    stream: ChaCha20,
    buf: Vec<u8>,
    at: usize,
    used: u64,
}

const BUFFER: usize = 4096;
const REKEY: u64 = 1 << 32;

impl Rng {
    pub fn new() -> Self {
        let mut rng = Rng { stream: Self::keyed(), buf: vec![0; BUFFER], at: BUFFER, used: 0 };
        rng.refill();
        rng
    }

    fn keyed() -> ChaCha20 {
        let mut key = [0u8; 32];
        // the kernel's CSPRNG does not fail once the system is up; if it ever did, a
        // padding keyed by the clock's nanoseconds still hides sizes from an observer
        if !sys::getrandom(&mut key) {
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            key[..16].copy_from_slice(&t.as_nanos().to_le_bytes());
        }
        ChaCha20::new(&key.into(), &[0u8; 12].into())
    }

    fn refill(&mut self) {
        if self.used >= REKEY {
            self.stream = Self::keyed();
            self.used = 0;
        }
        self.buf.iter_mut().for_each(|b| *b = 0);
        self.stream.apply_keystream(&mut self.buf);
        self.used += BUFFER as u64;
        self.at = 0;
    }

    /// Append `n` random bytes to `out`.
    pub fn extend(&mut self, out: &mut Vec<u8>, mut n: usize) {
        while n > 0 {
            if self.at == BUFFER {
                self.refill();
            }
            let take = n.min(BUFFER - self.at);
            out.extend_from_slice(&self.buf[self.at..self.at + take]);
            self.at += take;
            n -= take;
        }
    }

    /// Fill `dst` from the keystream: the same bytes `extend` would have appended.
    pub fn fill(&mut self, dst: &mut [u8]) {
        let mut done = 0;
        while done < dst.len() {
            if self.at == BUFFER {
                self.refill();
            }
            let take = (dst.len() - done).min(BUFFER - self.at);
            dst[done..done + take].copy_from_slice(&self.buf[self.at..self.at + take]);
            self.at += take;
            done += take;
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill(&mut b);
        u64::from_le_bytes(b)
    }
}

impl Default for Rng {
    fn default() -> Self {
        Self::new()
    }
}

/// Mask the sealed datagram `out[start..]` and pad it to a size from the skin's padding.
pub fn wrap_into(skin: &Skin, rng: &mut Rng, out: &mut Vec<u8>, start: usize) {
    skin.mask.wrap(&mut out[start..]);
    let n = out.len() - start;
    let size = skin.padding.draw(n, rng.next_u64());
    if size > n {
        rng.extend(out, size - n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // FIPS-197 appendix C.1: AES-128 of 00112233..eeff under 00010203..0e0f
    #[test]
    fn the_mask_is_aes_128_of_the_sample() {
        let key: [u8; 16] = core::array::from_fn(|i| i as u8);
        let sample: [u8; 16] = core::array::from_fn(|i| (i as u8) * 0x11);
        let expected = [
            0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30, 0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4, 0xc5, 0x5a,
        ];
        assert_eq!(Mask::new(&key).mask(&sample), expected);
    }

    #[test]
    fn a_wrapped_datagram_unwraps_to_itself() {
        let skin = Skin { mask: Mask::new(&[9u8; 16]), padding: Padding { ranges: vec![(200, 300, 1)] } };
        let mask = &skin.mask;
        let mut d: Vec<u8> = vec![4, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
        d.extend((0..64).map(|i| i as u8));
        let plain = d.clone();
        let mut out = d.clone();
        wrap_into(&skin, &mut Rng::new(), &mut out, 0);
        assert!((200..=300).contains(&out.len()));
        assert_ne!(out[..16], plain[..16]);
        assert_eq!(mask.unwrap(&mut out), Unmasked::Transport(plain.len()));
        assert_eq!(out[..plain.len()], plain[..]);
    }

    #[test]
    fn a_datagram_larger_than_every_range_is_not_padded() {
        let padding = Padding { ranges: vec![(64, 200, 4), (200, 600, 3)] };
        assert_eq!(padding.draw(601, u64::MAX), 601);
        for r in [0u64, 1, 5, u64::MAX, 0x1234_5678_9abc_def0] {
            let size = padding.draw(300, r);
            assert!((300..=600).contains(&size));
        }
    }
}
