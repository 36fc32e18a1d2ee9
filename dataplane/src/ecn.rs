//! ECN across the tunnel as node/core/ecn.py (RFC 6040 normal mode, the bits of RFC 3168):
//! the ECN field is the low two bits of the IPv4 TOS byte or bits 2-3 of the IPv6
//! traffic class byte; in IPv4 the header checksum is updated incrementally (RFC 1624
//! eqn. 3), modulo 0xFFFF as node/core/checksum.py's `update` does it.
//!
//! Used by the provider's queue (`mark_ce`, CE instead of a drop), the send thread (the
//! outer field copies the inner one, `ecn_of`) and the receive thread (`decapsulate`,
//! RFC 6040 section 4.2's table, in place).

pub const NOT_ECT: u8 = 0b00;
pub const ECT_1: u8 = 0b01;
pub const ECT_0: u8 = 0b10;
pub const CE: u8 = 0b11;

/// The ECN field of an IPv4 or IPv6 packet, or None if it is neither.
pub fn ecn_of(p: &[u8]) -> Option<u8> {
    let n = p.len();
    if n >= 20 && p[0] >> 4 == 4 && p[0] & 0x0F >= 5 {
        return Some(p[1] & 0b11);
    }
    if n >= 40 && p[0] >> 4 == 6 {
        return Some((p[1] >> 4) & 0b11);
    }
    None
}

/// Set the ECN field of `p`, an IPv4 or IPv6 packet whose field `ecn_of` read, in place.
fn set_ecn(p: &mut [u8], ecn: u8) {
    if p[0] >> 4 == 4 {
        let before = i64::from(u16::from_be_bytes([p[0], p[1]]));
        p[1] = (p[1] & 0xFC) | ecn;
        let after = i64::from(u16::from_be_bytes([p[0], p[1]]));
        let field = i64::from(u16::from_be_bytes([p[10], p[11]]));
        let updated = (field + before - after).rem_euclid(0xFFFF) as u16;
        p[10..12].copy_from_slice(&updated.to_be_bytes());
    } else {
        p[1] = (p[1] & 0xCF) | (ecn << 4);
    }
}

/// The packet marked CE; None if it cannot be (Not-ECT, or not IP). One already CE comes
/// back as it is (it counts as marked).
pub fn mark_ce(p: &[u8]) -> Option<Vec<u8>> {
    let ecn = ecn_of(p)?;
    if ecn == NOT_ECT {
        return None;
    }
    let mut out = p.to_vec();
    if ecn != CE {
        set_ecn(&mut out, CE);
    }
    Some(out)
}

/// What leaving the tunnel does to an inner packet under the outer field `outer`.
#[derive(Debug, PartialEq, Eq)]
pub enum Decap {
    Unchanged,
    Changed,
    Drop, // outer CE on a Not-ECT packet: the congestion cannot be passed on otherwise
}

/// RFC 6040 section 4.2 (Figure 4), in place: outer CE marks an ECT packet CE and drops
/// a Not-ECT one, outer ECT(1) makes an inner ECT(0) ECT(1); all else stays as it is.
pub fn decapsulate(outer: u8, p: &mut [u8]) -> Decap {
    let inner = match ecn_of(p) {
        Some(e) => e,
        None => return Decap::Unchanged,
    };
    let to = match (outer & 0b11, inner) {
        (CE, NOT_ECT) => return Decap::Drop,
        (CE, e) if e != CE => CE,
        (ECT_1, ECT_0) => ECT_1,
        _ => return Decap::Unchanged,
    };
    set_ecn(p, to);
    Decap::Changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4(tos: u8) -> Vec<u8> {
        let mut p = vec![0x45, tos, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        let sum = crate::checksum::complement(crate::checksum::words(&p));
        p[10..12].copy_from_slice(&sum.to_be_bytes());
        p
    }

    #[test]
    fn marks_ect_and_keeps_the_checksum_right() {
        let p = ipv4(0x02);
        let marked = mark_ce(&p).unwrap();
        assert_eq!(marked[1], 0x03);
        assert_eq!(crate::checksum::fold(crate::checksum::words(&marked)), 0xFFFF);
        assert!(mark_ce(&ipv4(0)).is_none());
        assert!(mark_ce(&[0x45; 10]).is_none());
    }

    #[test]
    fn decapsulation_follows_rfc_6040_figure_4() {
        // (outer, inner) -> the inner field after, or None: dropped
        let table = [
            (CE, NOT_ECT, None),
            (CE, ECT_0, Some(CE)),
            (CE, ECT_1, Some(CE)),
            (CE, CE, Some(CE)),
            (ECT_1, ECT_0, Some(ECT_1)),
            (ECT_1, NOT_ECT, Some(NOT_ECT)),
            (ECT_1, CE, Some(CE)),
            (ECT_0, ECT_1, Some(ECT_1)),
            (NOT_ECT, ECT_0, Some(ECT_0)),
        ];
        for (outer, inner, after) in table {
            let mut p = ipv4(0xb8 | inner); // DSCP EF: only the ECN bits change
            let result = decapsulate(outer, &mut p);
            match after {
                None => assert_eq!(result, Decap::Drop),
                Some(e) => {
                    assert_eq!(p[1], 0xb8 | e, "outer {outer} inner {inner}");
                    assert_eq!(result == Decap::Changed, e != inner);
                    assert_eq!(crate::checksum::fold(crate::checksum::words(&p)), 0xFFFF);
                }
            }
        }
        let mut v6 = vec![0u8; 40];
        v6[0] = 0x60;
        v6[1] = ECT_0 << 4;
        assert_eq!(decapsulate(CE, &mut v6), Decap::Changed);
        assert_eq!((v6[1] >> 4) & 3, CE);
        let mut junk = vec![0x12; 30];
        assert_eq!(decapsulate(CE, &mut junk), Decap::Unchanged);
        assert_eq!(junk, vec![0x12; 30]);
    }
}
