//! WireGuard transport data messages (whitepaper section 5.4.6), as
//! protocol/link/device.py seals and opens them: the 16-byte header (type 4 and
//! three zero bytes, the receiver index, the 64-bit counter, little-endian), then
//! ChaCha20-Poly1305 of the plaintext zero-padded to a multiple of 16 (capped at
//! the MTU), with the nonce of four zero bytes and the counter, and no associated
//! data. No I/O here; the bindings in lib.rs release the GIL around these calls.

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, Nonce, Tag};

use crate::replay::ReplayWindow;

pub const HEADER_SIZE: usize = 16;
pub const TAG_SIZE: usize = 16;
pub const MESSAGE_TRANSPORT: u32 = 4;

/// Why a datagram was refused: the same names as the Python path's drop counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    NotTransport,
    Short,
    UnknownIndex,
    Expired,
    Replay,
    Decrypt,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::NotTransport => "not_transport",
            Refusal::Short => "transport_short",
            Refusal::UnknownIndex => "transport_unknown_index",
            Refusal::Expired => "transport_expired_keypair",
            Refusal::Replay => "transport_replay",
            Refusal::Decrypt => "transport_decrypt",
        }
    }
}

fn nonce(counter: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_le_bytes());
    Nonce::from(n)
}

/// The plaintext length after padding: `protocol/link/messages.py`'s `padded_length`.
pub fn padded_length(length: usize, mtu: Option<usize>) -> usize {
    let padded = (length + 15) & !15;
    match mtu {
        Some(m) if padded > m => length.max(m),
        _ => padded,
    }
}

/// One sealed datagram for `remote_index` with `counter`.
pub fn seal(
    aead: &ChaCha20Poly1305,
    remote_index: u32,
    counter: u64,
    packet: &[u8],
    mtu: Option<usize>,
) -> Vec<u8> {
    let padded = padded_length(packet.len(), mtu);
    let mut out = Vec::with_capacity(HEADER_SIZE + padded + TAG_SIZE);
    out.extend_from_slice(&MESSAGE_TRANSPORT.to_le_bytes());
    out.extend_from_slice(&remote_index.to_le_bytes());
    out.extend_from_slice(&counter.to_le_bytes());
    out.extend_from_slice(packet);
    out.resize(HEADER_SIZE + padded, 0);
    let tag = aead
        .encrypt_in_place_detached(&nonce(counter), b"", &mut out[HEADER_SIZE..])
        .expect("a buffer under 256 GiB always seals");
    out.extend_from_slice(&tag);
    out
}

/// Open one datagram addressed to `local_index`, in the Python path's order of
/// checks: length, type word, index, counter limit, replay window, authentication;
/// the window moves only once the datagram authenticated.
pub fn open(
    aead: &ChaCha20Poly1305,
    window: &mut ReplayWindow,
    local_index: u32,
    limit: u64,
    data: &[u8],
) -> Result<Vec<u8>, Refusal> {
    if data.len() < HEADER_SIZE + TAG_SIZE {
        return Err(Refusal::Short);
    }
    let word = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
    let receiver = u32::from_le_bytes([data[4], data[5], data[6], data[7]]);
    if word != MESSAGE_TRANSPORT {
        return Err(Refusal::NotTransport); // a handshake message: the caller's to route
    }
    if receiver != local_index {
        return Err(Refusal::UnknownIndex);
    }
    let mut c = [0u8; 8];
    c.copy_from_slice(&data[8..16]);
    let counter = u64::from_le_bytes(c);
    if counter >= limit {
        return Err(Refusal::Expired);
    }
    if !window.check(counter, limit) {
        return Err(Refusal::Replay);
    }
    let split = data.len() - TAG_SIZE;
    let mut plain = data[HEADER_SIZE..split].to_vec();
    let tag = Tag::from_slice(&data[split..]);
    if aead
        .decrypt_in_place_detached(&nonce(counter), b"", &mut plain, tag)
        .is_err()
    {
        return Err(Refusal::Decrypt);
    }
    window.accept(counter, limit);
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chacha20poly1305::KeyInit;

    #[test]
    fn a_sealed_datagram_opens_once() {
        let aead = ChaCha20Poly1305::new(&[7u8; 32].into());
        let mut w = ReplayWindow::new();
        let d = seal(&aead, 9, 3, b"hello", None);
        assert_eq!(d.len(), 16 + 16 + 16);
        assert_eq!(open(&aead, &mut w, 9, u64::MAX, &d).unwrap()[..5], b"hello"[..]);
        assert_eq!(open(&aead, &mut w, 9, u64::MAX, &d), Err(Refusal::Replay));
        assert_eq!(open(&aead, &mut w, 8, u64::MAX, &d), Err(Refusal::UnknownIndex));
        assert_eq!(open(&aead, &mut w, 9, u64::MAX, &d[..31]), Err(Refusal::Short));
    }
}
