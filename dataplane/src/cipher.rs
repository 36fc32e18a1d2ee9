//! The AEAD of the transport messages, ChaCha20-Poly1305 (RFC 8439) with WireGuard's
//! nonce (four zero bytes, then the 64-bit counter, little-endian) and no associated
//! data, sealed and opened in place so the threads allocate nothing per datagram.
//! Two interchangeable backends: ring's (BoringSSL's assembly; the `ring` feature, on
//! by default) and RustCrypto's chacha20poly1305 (pure Rust, for rustc 1.63). Both
//! give the same bytes; tests/unit/test_dataplane_diff.py and test_fixed_handshake.py hold
//! the built one byte for byte to the Python path's (the `cryptography` package's).

pub const TAG_SIZE: usize = 16;
pub const KEY_SIZE: usize = 32;

fn nonce(counter: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_le_bytes());
    n
}

#[cfg(feature = "ring")]
pub struct Cipher(ring::aead::LessSafeKey);

#[cfg(feature = "ring")]
impl Cipher {
    pub fn new(key: &[u8; KEY_SIZE]) -> Self {
        let unbound = ring::aead::UnboundKey::new(&ring::aead::CHACHA20_POLY1305, key)
            .expect("32 bytes is the key size");
        Cipher(ring::aead::LessSafeKey::new(unbound))
    }

    /// Encrypt `buf` in place; the tag.
    pub fn seal(&self, counter: u64, buf: &mut [u8]) -> [u8; TAG_SIZE] {
        let n = ring::aead::Nonce::assume_unique_for_key(nonce(counter));
        let tag = self
            .0
            .seal_in_place_separate_tag(n, ring::aead::Aad::empty(), buf)
            .expect("a buffer under 256 GiB always seals");
        let mut out = [0u8; TAG_SIZE];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Authenticate and decrypt `buf` (ciphertext, then the tag) in place: true when
    /// it authenticated, and then its first `buf.len() - TAG_SIZE` bytes are the text.
    pub fn open(&self, counter: u64, buf: &mut [u8]) -> bool {
        let n = ring::aead::Nonce::assume_unique_for_key(nonce(counter));
        self.0.open_in_place(n, ring::aead::Aad::empty(), buf).is_ok()
    }
}

#[cfg(not(feature = "ring"))]
pub struct Cipher(chacha20poly1305::ChaCha20Poly1305);

#[cfg(not(feature = "ring"))]
impl Cipher {
    pub fn new(key: &[u8; KEY_SIZE]) -> Self {
        use chacha20poly1305::KeyInit;
        Cipher(chacha20poly1305::ChaCha20Poly1305::new(key.into()))
    }

    pub fn seal(&self, counter: u64, buf: &mut [u8]) -> [u8; TAG_SIZE] {
        use chacha20poly1305::aead::AeadInPlace;
        let tag = self
            .0
            .encrypt_in_place_detached(&nonce(counter).into(), b"", buf)
            .expect("a buffer under 256 GiB always seals");
        tag.into()
    }

    pub fn open(&self, counter: u64, buf: &mut [u8]) -> bool {
        use chacha20poly1305::aead::AeadInPlace;
        if buf.len() < TAG_SIZE {
            return false;
        }
        let (text, tag) = buf.split_at_mut(buf.len() - TAG_SIZE);
        let tag = chacha20poly1305::Tag::from_slice(tag);
        self.0.decrypt_in_place_detached(&nonce(counter).into(), b"", text, tag).is_ok()
    }
}
