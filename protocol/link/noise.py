"""The Noise_IKpsk2 handshake pattern as WireGuard uses it (Noise rev. 34, sections 5 and 9).

    IKpsk2:
      <- s
      ...
      -> e, es, s, ss
      <- e, ee, se, psk

`SymmetricState` holds the chaining key `ck` and handshake hash `h`; the four
functions below write and read the two messages. They take every key as an
argument (no randomness here), so a published Noise vector with BLAKE2s can be
replayed through them byte for byte (tests/unit/test_noise_vectors.py), and
WireGuard's messages in handshake.py are these plus indices, timestamp and MACs.

Every MixKey in this pattern is followed by exactly one EncryptAndHash or none,
so each derived key is used once with nonce 0, as WireGuard does.
"""

from dataclasses import dataclass

from .crypto import aead_decrypt, aead_encrypt, dh, hash_, kdf1, kdf2, kdf3


@dataclass(slots=True)
class SymmetricState:
    ck: bytes
    h: bytes

    @classmethod
    def initialize(cls, protocol_name: bytes, prologue: bytes) -> "SymmetricState":
        """InitializeSymmetric then MixHash(prologue) (Noise section 5.2)."""
        h = protocol_name.ljust(32, b"\x00") if len(protocol_name) <= 32 else hash_(protocol_name)
        return cls(ck=h, h=hash_(h + prologue))

    @classmethod
    def from_initial(cls, ck: bytes, h: bytes) -> "SymmetricState":
        return cls(ck=ck, h=h)

    def mix_hash(self, data: bytes) -> None:
        self.h = hash_(self.h + data)

    def mix_key(self, ikm: bytes) -> bytes:
        self.ck, key = kdf2(self.ck, ikm)
        return key

    def mix_key_only(self, ikm: bytes) -> None:
        self.ck = kdf1(self.ck, ikm)

    def mix_key_and_hash(self, ikm: bytes) -> bytes:
        self.ck, temp_h, key = kdf3(self.ck, ikm)
        self.mix_hash(temp_h)
        return key

    def encrypt_and_hash(self, key: bytes, plaintext: bytes) -> bytes:
        ciphertext = aead_encrypt(key, 0, plaintext, self.h)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, key: bytes, ciphertext: bytes) -> bytes:
        plaintext = aead_decrypt(key, 0, ciphertext, self.h)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[bytes, bytes]:
        """(initiator-to-responder key, responder-to-initiator key)."""
        return kdf2(self.ck, b"")


def write_message1(
    st: SymmetricState,
    *,
    e_priv: bytes,
    e_pub: bytes,
    s_priv: bytes,
    s_pub: bytes,
    rs: bytes,
    payload: bytes,
) -> tuple[bytes, bytes]:
    """-> e, es, s, ss; returns (encrypted static, encrypted payload).

    The caller has already mixed the responder's static key into `st` (the
    pre-message) and sends `e_pub` in the clear.
    """
    st.mix_hash(e_pub)
    st.mix_key_only(e_pub)
    key = st.mix_key(dh(e_priv, rs))
    enc_static = st.encrypt_and_hash(key, s_pub)
    key = st.mix_key(dh(s_priv, rs))
    enc_payload = st.encrypt_and_hash(key, payload)
    return enc_static, enc_payload


def read_message1_static(
    st: SymmetricState, *, s_priv: bytes, re: bytes, enc_static: bytes
) -> bytes:
    """The first half of reading message 1: returns the initiator's static key.

    Split from the payload so a responder can look up the peer (and its
    preshared key and timestamp) between the two halves.
    """
    st.mix_hash(re)
    st.mix_key_only(re)
    key = st.mix_key(dh(s_priv, re))
    return st.decrypt_and_hash(key, enc_static)


def read_message1_payload(
    st: SymmetricState, *, s_priv: bytes, rs: bytes, enc_payload: bytes
) -> bytes:
    key = st.mix_key(dh(s_priv, rs))
    return st.decrypt_and_hash(key, enc_payload)


def write_message2(
    st: SymmetricState,
    *,
    e_priv: bytes,
    e_pub: bytes,
    re: bytes,
    rs: bytes,
    psk: bytes,
    payload: bytes,
) -> bytes:
    """<- e, ee, se, psk; returns the encrypted payload."""
    st.mix_hash(e_pub)
    st.mix_key_only(e_pub)
    st.mix_key_only(dh(e_priv, re))
    st.mix_key_only(dh(e_priv, rs))
    key = st.mix_key_and_hash(psk)
    return st.encrypt_and_hash(key, payload)


def read_message2(
    st: SymmetricState,
    *,
    e_priv: bytes,
    s_priv: bytes,
    re: bytes,
    psk: bytes,
    enc_payload: bytes,
) -> bytes:
    st.mix_hash(re)
    st.mix_key_only(re)
    st.mix_key_only(dh(e_priv, re))
    st.mix_key_only(dh(s_priv, re))
    key = st.mix_key_and_hash(psk)
    return st.decrypt_and_hash(key, enc_payload)
