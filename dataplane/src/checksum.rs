//! The internet checksum (RFC 1071), as node/core/checksum.py computes it: a sum of
//! 16-bit big-endian words (an odd length padded with a zero byte), folded with
//! end-around carry, complemented. Sums are kept in a u64 and only folded at the end:
//! 2^16 = 1 (mod 0xFFFF), so any two sums congruent mod 0xFFFF give the same field.

/// The sum of the 16-bit big-endian words of `data` (a trailing odd byte padded), up to
/// a multiple of 0xFFFF: the value is below 2^34, zero only when every word is zero, and
/// congruent to the plain sum mod 0xFFFF, which is all `fold` keeps. It adds 64-bit
/// big-endian words with end-around carry (2^64 = 1 mod 0xFFFF, as 2^16 is), eight bytes
/// a step instead of two: the send thread sums every byte of every TSO segment.
pub fn words(data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(8);
    let mut sum: u64 = 0;
    for c in &mut chunks {
        let word = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        let (value, carry) = sum.overflowing_add(word);
        sum = value + u64::from(carry);
    }
    // halves of a 64-bit sum add up to the same value mod 0xFFFF (2^32 = 1), nonzero
    // when it is, and leave room for the callers' own additions
    let mut total = (sum >> 32) + (sum & 0xFFFF_FFFF);
    let mut rest = chunks.remainder().chunks_exact(2);
    for pair in &mut rest {
        total += u64::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    if let [last] = rest.remainder() {
        total += u64::from(*last) << 8;
    }
    total
}

/// A sum folded to 16 bits: 1..=0xFFFF, or 0 for 0 (what a partial checksum holds).
pub fn fold(total: u64) -> u16 {
    if total == 0 {
        0
    } else {
        ((total - 1) % 0xFFFF + 1) as u16
    }
}

/// The checksum field for a sum of words: the one's complement of its fold.
pub fn complement(total: u64) -> u16 {
    0xFFFF - fold(total)
}

/// Recompute the IPv4 header checksum (bytes 10-11) of the `ip_len`-byte header at the
/// start of `header`, in place.
pub fn set_ipv4_header_checksum(header: &mut [u8], ip_len: usize) {
    header[10] = 0;
    header[11] = 0;
    let sum = complement(words(&header[..ip_len]));
    header[10..12].copy_from_slice(&sum.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_1071_example() {
        // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to 0x2ddf0, folded 0xddf2
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(words(&data)), 0xddf2);
        assert_eq!(complement(words(&data)), 0x220d);
    }

    #[test]
    fn an_odd_byte_is_padded() {
        assert_eq!(words(&[0x12]), 0x1200);
    }

    /// RFC 1071's definition, two bytes a step: what `words` must agree with.
    fn plain(data: &[u8]) -> u64 {
        let mut chunks = data.chunks_exact(2);
        let mut sum: u64 = (&mut chunks).map(|p| u64::from(u16::from_be_bytes([p[0], p[1]]))).sum();
        if let [last] = chunks.remainder() {
            sum += u64::from(*last) << 8;
        }
        sum
    }

    #[test]
    fn eight_bytes_a_step_folds_as_two() {
        let mut x: u32 = 1; // a fixed xorshift stream: all-ones runs force the carries
        for length in 0..300 {
            for fill in [None, Some(0x00), Some(0xFF)] {
                let data: Vec<u8> = (0..length)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        fill.unwrap_or(x as u8)
                    })
                    .collect();
                let (fast, slow) = (words(&data), plain(&data));
                assert_eq!(fold(fast), fold(slow), "length {length}");
                assert_eq!(fast == 0, slow == 0);
                assert!(fast < 1 << 34);
            }
        }
    }
}
