//! fq_codel.py's classify and its default hash, `hash((seed, addresses, proto_ports))`, as
//! 64-bit CPython 3.11 computes it, so a native queue puts every packet in the flow the
//! Python class would.
//!
//! An int's hash is its value modulo the Mersenne prime 2^61 - 1, negated for a negative int,
//! with -1 made -2 (Python/pyhash.c, Objects/longobject.c's long_hash). A tuple's hash is the
//! xxHash-style accumulation of Objects/tupleobject.c's tuplehash over its items' hashes.
//! tests/unit/test_share_native.py checks both against `hash` with hypothesis.

use super::fq_codel::FLOWS;

const MODULUS: u64 = (1 << 61) - 1;
const XXPRIME_1: u64 = 11400714785074694791;
const XXPRIME_2: u64 = 14029467366897019727;
const XXPRIME_5: u64 = 2870177450012600261;

const TCP: u8 = 6;
const UDP: u8 = 17;

/// hash() of a non-negative int given as big-endian bytes.
pub fn hash_be_bytes(bytes: &[u8]) -> i64 {
    let mut h: u64 = 0;
    for &b in bytes {
        h = ((u128::from(h) << 8 | u128::from(b)) % u128::from(MODULUS)) as u64;
    }
    h as i64
}

/// hash() of an int that fits in an i128.
pub fn hash_i128(value: i128) -> i64 {
    let h = (value.unsigned_abs() % u128::from(MODULUS)) as i64;
    if value >= 0 {
        h
    } else if h == 1 {
        -2
    } else {
        -h
    }
}

/// hash() of a tuple whose items hash to `lanes`.
pub fn hash_tuple(lanes: &[i64]) -> i64 {
    let mut acc = XXPRIME_5;
    for &lane in lanes {
        acc = acc.wrapping_add((lane as u64).wrapping_mul(XXPRIME_2));
        acc = acc.rotate_left(31);
        acc = acc.wrapping_mul(XXPRIME_1);
    }
    acc = acc.wrapping_add(lanes.len() as u64 ^ (XXPRIME_5 ^ 3527539));
    if acc == u64::MAX {
        return 1546275796;
    }
    acc as i64
}

fn be16(p: &[u8], at: usize) -> u64 {
    u64::from(u16::from_be_bytes([p[at], p[at + 1]]))
}

fn be32(p: &[u8], at: usize) -> u64 {
    u64::from(u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]]))
}

/// The flow index of a packet: 0..FLOWS by hash, FLOWS for bytes that are not IPv4/IPv6
/// (fq_codel.py's FqCoDel.classify, branch for branch). `seed` is hash(seed).
pub fn classify(packet: &[u8], seed: i64) -> usize {
    let n = packet.len();
    if n < 20 {
        return FLOWS;
    }
    let b0 = packet[0];
    let (addresses, proto_ports): (i64, u64);
    if b0 >> 4 == 4 {
        let fragment = be16(packet, 6);
        let proto = packet[9];
        let ihl = usize::from(b0 & 15) << 2;
        addresses = hash_be_bytes(&packet[12..20]);
        proto_ports = if (proto == TCP || proto == UDP)
            && fragment & 0x3FFF == 0 // not a fragment (MF or offset)
            && ihl >= 20
            && n >= ihl + 4
        {
            u64::from(proto) << 32 | be32(packet, ihl)
        } else {
            u64::from(proto)
        };
    } else if b0 >> 4 == 6 && n >= 40 {
        let proto = packet[6];
        addresses = hash_be_bytes(&packet[8..40]);
        proto_ports = if (proto == TCP || proto == UDP) && n >= 44 {
            u64::from(proto) << 32 | be32(packet, 40)
        } else {
            u64::from(proto)
        };
    } else {
        return FLOWS;
    }
    // proto_ports < 2^40: its hash is itself
    hash_tuple(&[seed, addresses, proto_ports as i64]).rem_euclid(FLOWS as i64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers_of_cpython_3_11() {
        // python3.11 -c 'print(hash(()), hash((1, 2, 3)), hash(2**61), hash(-1))'
        assert_eq!(hash_tuple(&[]), 5740354900026072187);
        assert_eq!(hash_tuple(&[1, 2, 3]), 529344067295497451);
        assert_eq!(hash_i128(1 << 61), 1);
        assert_eq!(hash_i128(-1), -2);
        assert_eq!(hash_be_bytes(&[0xFF; 8]), ((u64::MAX) % MODULUS) as i64);
    }

    #[test]
    fn short_and_odd_headers_never_panic() {
        for n in 0..80 {
            for b0 in [0x40u8, 0x45, 0x4F, 0x60, 0x00, 0xFF] {
                let mut p = vec![6u8; n];
                if n > 0 {
                    p[0] = b0;
                }
                assert!(classify(&p, 7) <= FLOWS);
            }
        }
    }
}
