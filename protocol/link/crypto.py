"""Cryptographic primitives of WireGuard (whitepaper section 5.4) and Noise.

HASH is BLAKE2s-256, MAC is keyed BLAKE2s-128, HMAC is HMAC-BLAKE2s, KDFn is
the HKDF chain of the Noise specification (section 4.3) built on HMAC. AEAD is
ChaCha20-Poly1305 with a 96-bit nonce of four zero bytes and a 64-bit
little-endian counter (aead.py: the native module's, else `cryptography`'s);
XAEAD is XChaCha20-Poly1305 and DH is X25519 (both from libsodium via PyNaCl).
"""

import struct

# `hashlib` and `hmac` load OpenSSL's libcrypto when imported, 3.7 MiB of a router's
# memory for functions the node does not use (issue 5). These are the C functions they
# hand out, taken from the modules CPython builds them in.
from _blake2 import blake2s as blake2s
from _operator import _compare_digest

from nacl import bindings as _sodium
from nacl.exceptions import CryptoError

from ..errors import RemoteProtocolError
from . import aead

equal = _compare_digest  # constant-time, as hmac.compare_digest

_NONCE = struct.Struct("<4xQ")
_ONE = b"\x01"
_TWO = b"\x02"
_THREE = b"\x03"


_BLOCK = 64  # BLAKE2s block size in bytes
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


def hash_(data: bytes) -> bytes:
    return blake2s(data).digest()


def mac(key: bytes, data: bytes) -> bytes:
    return blake2s(data, key=key, digest_size=16).digest()


def hmac(key: bytes, data: bytes) -> bytes:
    """HMAC-BLAKE2s (RFC 2104): H((K ^ opad) || H((K ^ ipad) || data))."""
    if len(key) > _BLOCK:
        key = blake2s(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    inner = blake2s(key.translate(_IPAD) + data).digest()
    return blake2s(key.translate(_OPAD) + inner).digest()


def kdf1(key: bytes, data: bytes) -> bytes:
    t0 = hmac(key, data)
    return hmac(t0, _ONE)


def kdf2(key: bytes, data: bytes) -> tuple[bytes, bytes]:
    t0 = hmac(key, data)
    t1 = hmac(t0, _ONE)
    return t1, hmac(t0, t1 + _TWO)


def kdf3(key: bytes, data: bytes) -> tuple[bytes, bytes, bytes]:
    t0 = hmac(key, data)
    t1 = hmac(t0, _ONE)
    t2 = hmac(t0, t1 + _TWO)
    return t1, t2, hmac(t0, t2 + _THREE)


def nonce(counter: int) -> bytes:
    return _NONCE.pack(counter)


def aead_encrypt(key: bytes, counter: int, plaintext: bytes, ad: bytes) -> bytes:
    return aead.ChaCha20Poly1305(key).encrypt(_NONCE.pack(counter), plaintext, ad)


def aead_decrypt(key: bytes, counter: int, ciphertext: bytes, ad: bytes) -> bytes:
    """Decrypt or raise RemoteProtocolError("decrypt")."""
    try:
        return aead.ChaCha20Poly1305(key).decrypt(_NONCE.pack(counter), ciphertext, ad)
    except aead.BAD_TAG:
        raise RemoteProtocolError("decrypt") from None


def xaead_encrypt(key: bytes, nonce24: bytes, plaintext: bytes, ad: bytes) -> bytes:
    out: bytes = _sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, ad, nonce24, key)
    return out


def xaead_decrypt(key: bytes, nonce24: bytes, ciphertext: bytes, ad: bytes) -> bytes:
    try:
        out: bytes = _sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
            ciphertext, ad, nonce24, key
        )
    except CryptoError:
        raise RemoteProtocolError("cookie_decrypt") from None
    return out


def public_key(private: bytes) -> bytes:
    out: bytes = _sodium.crypto_scalarmult_base(private)
    return out


def dh(private: bytes, public: bytes) -> bytes:
    """X25519. A low-order point (all-zero result) is the peer's fault."""
    try:
        out: bytes = _sodium.crypto_scalarmult(private, public)
    except (CryptoError, RuntimeError):
        raise RemoteProtocolError("dh_zero") from None
    if not any(out):
        raise RemoteProtocolError("dh_zero")
    return out


def clamp(private: bytes) -> bytes:
    """Clamp a Curve25519 scalar as `wg genkey` does, so keys print identically."""
    b = bytearray(private)
    b[0] &= 248
    b[31] = (b[31] & 127) | 64
    return bytes(b)
