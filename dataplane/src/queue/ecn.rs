//! CE marking as node/core/ecn.py's mark_ce (RFC 3168 section 5): the ECN field is the low
//! two bits of the IPv4 TOS byte or bits 2-3 of the IPv6 traffic class byte; in IPv4 the
//! header checksum is updated incrementally (RFC 1624 eqn. 3), modulo 0xFFFF as
//! node/core/checksum.py's `update` does it.

const NOT_ECT: u8 = 0b00;
const CE: u8 = 0b11;

fn ecn_of(p: &[u8]) -> Option<u8> {
    let n = p.len();
    if n >= 20 && p[0] >> 4 == 4 && p[0] & 0x0F >= 5 {
        return Some(p[1] & 0b11);
    }
    if n >= 40 && p[0] >> 4 == 6 {
        return Some((p[1] >> 4) & 0b11);
    }
    None
}

/// The packet marked CE; None if it cannot be (Not-ECT, or not IP). One already CE comes
/// back as it is (it counts as marked).
pub fn mark_ce(p: &[u8]) -> Option<Vec<u8>> {
    let ecn = ecn_of(p)?;
    if ecn == NOT_ECT {
        return None;
    }
    let mut out = p.to_vec();
    if ecn == CE {
        return Some(out);
    }
    if out[0] >> 4 == 4 {
        let before = i64::from(u16::from_be_bytes([out[0], out[1]]));
        out[1] = (out[1] & 0xFC) | CE;
        let after = i64::from(u16::from_be_bytes([out[0], out[1]]));
        let field = i64::from(u16::from_be_bytes([out[10], out[11]]));
        let updated = (field + before - after).rem_euclid(0xFFFF) as u16;
        out[10..12].copy_from_slice(&updated.to_be_bytes());
    } else {
        out[1] = (out[1] & 0xCF) | (CE << 4);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_ect_and_keeps_the_checksum_right() {
        let mut p = vec![
            0x45, 0x02, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let sum = crate::checksum::complement(crate::checksum::words(&p));
        p[10..12].copy_from_slice(&sum.to_be_bytes());
        let marked = mark_ce(&p).unwrap();
        assert_eq!(marked[1], 0x03);
        assert_eq!(
            crate::checksum::fold(crate::checksum::words(&marked)),
            0xFFFF
        );
        p[1] = 0;
        assert!(mark_ce(&p).is_none());
        assert!(mark_ce(&[0x45; 10]).is_none());
    }
}
