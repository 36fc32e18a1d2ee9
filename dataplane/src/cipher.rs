//! ChaCha20-Poly1305 (RFC 8439), sealed and opened in place so the threads allocate
//! nothing per datagram. Two interchangeable backends: ring's (BoringSSL's assembly; the
//! `ring` feature, on by default) and RustCrypto's chacha20poly1305 (pure Rust, for rustc
//! 1.63). Both give the same bytes; tests/unit/test_dataplane_diff.py and
//! test_fixed_handshake.py hold the built one byte for byte to the Python path's (the
//! `cryptography` package's). `seal_detached`/`open_detached` take any 12-byte nonce and
//! associated data (aead.rs, the class Python calls); `seal`/`open` are the transport
//! messages' use, WireGuard's nonce (four zero bytes, then the 64-bit counter,
//! little-endian) and no associated data.

pub const TAG_SIZE: usize = 16;
pub const KEY_SIZE: usize = 32;
pub const NONCE_SIZE: usize = 12;

/// Whether this build's backend is ring's assembly.
pub const ASSEMBLY: bool = cfg!(feature = "ring");

fn nonce(counter: u64) -> [u8; NONCE_SIZE] {
    let mut n = [0u8; NONCE_SIZE];
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

    /// Encrypt `buf` in place under `nonce` and `aad`; the tag (None: too long).
    pub fn seal_detached(
        &self,
        nonce: [u8; NONCE_SIZE],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Option<[u8; TAG_SIZE]> {
        let n = ring::aead::Nonce::assume_unique_for_key(nonce);
        let aad = ring::aead::Aad::from(aad);
        let tag = self.0.seal_in_place_separate_tag(n, aad, buf).ok()?;
        let mut out = [0u8; TAG_SIZE];
        out.copy_from_slice(tag.as_ref());
        Some(out)
    }

    /// Authenticate `buf` (the ciphertext) with `tag` and decrypt it in place: true when
    /// it authenticated.
    pub fn open_detached(
        &self,
        nonce: [u8; NONCE_SIZE],
        aad: &[u8],
        buf: &mut [u8],
        tag: [u8; TAG_SIZE],
    ) -> bool {
        let n = ring::aead::Nonce::assume_unique_for_key(nonce);
        let aad = ring::aead::Aad::from(aad);
        self.0.open_in_place_separate_tag(n, aad, tag.into(), buf, 0..).is_ok()
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

    pub fn seal_detached(
        &self,
        nonce: [u8; NONCE_SIZE],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Option<[u8; TAG_SIZE]> {
        use chacha20poly1305::aead::AeadInPlace;
        let tag = self.0.encrypt_in_place_detached(&nonce.into(), aad, buf).ok()?;
        Some(tag.into())
    }

    pub fn open_detached(
        &self,
        nonce: [u8; NONCE_SIZE],
        aad: &[u8],
        buf: &mut [u8],
        tag: [u8; TAG_SIZE],
    ) -> bool {
        use chacha20poly1305::aead::AeadInPlace;
        let tag = tag.into();
        self.0.decrypt_in_place_detached(&nonce.into(), aad, buf, &tag).is_ok()
    }
}

impl Cipher {
    /// Encrypt `buf` in place as transport message `counter`; the tag.
    pub fn seal(&self, counter: u64, buf: &mut [u8]) -> [u8; TAG_SIZE] {
        self.seal_detached(nonce(counter), b"", buf)
            .expect("a buffer under 256 GiB always seals")
    }

    /// Authenticate and decrypt `buf` (ciphertext, then the tag) in place: true when
    /// it authenticated, and then its first `buf.len() - TAG_SIZE` bytes are the text.
    pub fn open(&self, counter: u64, buf: &mut [u8]) -> bool {
        if buf.len() < TAG_SIZE {
            return false;
        }
        let (text, tag) = buf.split_at_mut(buf.len() - TAG_SIZE);
        let mut detached = [0u8; TAG_SIZE];
        detached.copy_from_slice(tag);
        self.open_detached(nonce(counter), b"", text, detached)
    }
}
