//! The internet checksum (RFC 1071), as node/core/checksum.py computes it: a sum of
//! 16-bit big-endian words (an odd length padded with a zero byte), folded with
//! end-around carry, complemented. Sums are kept in a u64 and only folded at the end:
//! 2^16 = 1 (mod 0xFFFF), so any two sums congruent mod 0xFFFF give the same field.

/// The sum of the 16-bit big-endian words of `data` (a trailing odd byte padded).
pub fn words(data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(2);
    let mut sum: u64 = 0;
    for pair in &mut chunks {
        sum += u64::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u64::from(*last) << 8;
    }
    sum
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
}
