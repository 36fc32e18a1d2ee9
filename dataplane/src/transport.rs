//! WireGuard transport data messages (whitepaper section 5.4.6), as
//! protocol/link/device.py seals and opens them: the 16-byte header (type 4 and
//! three zero bytes, the receiver index, the 64-bit counter, little-endian), then
//! ChaCha20-Poly1305 of the plaintext zero-padded to a multiple of 16 (capped at
//! the MTU), with the nonce of four zero bytes and the counter, and no associated
//! data. No I/O here; the bindings in lib.rs release the GIL around these calls.

use crate::cipher::Cipher;
use crate::replay::ReplayWindow;

pub const HEADER_SIZE: usize = 16;
pub const TAG_SIZE: usize = crate::cipher::TAG_SIZE;
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

/// The plaintext length after padding: `protocol/link/messages.py`'s `padded_length`.
pub fn padded_length(length: usize, mtu: Option<usize>) -> usize {
    let padded = (length + 15) & !15;
    match mtu {
        Some(m) if padded > m => length.max(m),
        _ => padded,
    }
}

/// One sealed datagram for `remote_index` with `counter`, appended to `out` (the send
/// thread seals a GSO run's datagrams one after another into one buffer).
pub fn seal_into(
    aead: &Cipher,
    remote_index: u32,
    counter: u64,
    packet: &[u8],
    mtu: Option<usize>,
    out: &mut Vec<u8>,
) {
    let padded = padded_length(packet.len(), mtu);
    let start = out.len();
    out.reserve(HEADER_SIZE + padded + TAG_SIZE);
    out.extend_from_slice(&MESSAGE_TRANSPORT.to_le_bytes());
    out.extend_from_slice(&remote_index.to_le_bytes());
    out.extend_from_slice(&counter.to_le_bytes());
    out.extend_from_slice(packet);
    out.resize(start + HEADER_SIZE + padded, 0);
    let tag = aead.seal(counter, &mut out[start + HEADER_SIZE..]);
    out.extend_from_slice(&tag);
}

/// One sealed datagram for `remote_index` with `counter`.
pub fn seal(aead: &Cipher, remote_index: u32, counter: u64, packet: &[u8], mtu: Option<usize>) -> Vec<u8> {
    let mut out = Vec::new();
    seal_into(aead, remote_index, counter, packet, mtu, &mut out);
    out
}

/// Open one datagram addressed to `local_index` in place, in the Python path's order of
/// checks: length, type word, index, counter limit, replay window, authentication;
/// the window moves only once the datagram authenticated. On success the text is
/// `data[HEADER_SIZE..HEADER_SIZE + n]` for the returned n; on a refusal after the
/// window check (a forgery) `data`'s body may be overwritten.
pub fn open_in_place(
    aead: &Cipher,
    window: &mut ReplayWindow,
    local_index: u32,
    limit: u64,
    data: &mut [u8],
) -> Result<usize, Refusal> {
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
    if !aead.open(counter, &mut data[HEADER_SIZE..]) {
        return Err(Refusal::Decrypt);
    }
    window.accept(counter, limit);
    Ok(data.len() - HEADER_SIZE - TAG_SIZE)
}

/// `open_in_place` on a copy: the plaintext.
pub fn open(
    aead: &Cipher,
    window: &mut ReplayWindow,
    local_index: u32,
    limit: u64,
    data: &[u8],
) -> Result<Vec<u8>, Refusal> {
    let mut copy = data.to_vec();
    let n = open_in_place(aead, window, local_index, limit, &mut copy)?;
    copy.truncate(HEADER_SIZE + n);
    copy.drain(..HEADER_SIZE);
    Ok(copy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_datagram_opens_once() {
        let aead = Cipher::new(&[7u8; 32]);
        let mut w = ReplayWindow::new();
        let d = seal(&aead, 9, 3, b"hello", None);
        assert_eq!(d.len(), 16 + 16 + 16);
        assert_eq!(open(&aead, &mut w, 9, u64::MAX, &d).unwrap()[..5], b"hello"[..]);
        assert_eq!(open(&aead, &mut w, 9, u64::MAX, &d), Err(Refusal::Replay));
        assert_eq!(open(&aead, &mut w, 8, u64::MAX, &d), Err(Refusal::UnknownIndex));
        assert_eq!(open(&aead, &mut w, 9, u64::MAX, &d[..31]), Err(Refusal::Short));
    }
}
