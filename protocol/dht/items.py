"""Items stored in the DHT (BEP 44): immutable ones under the SHA-1 of their value,
mutable ones under the SHA-1 of an Ed25519 key and a salt, signed by that key.

What a mutable item's signature covers is the buffer BEP 44 spells out, built from
the value's bencoded bytes as they were received: `4:salt<n>:<salt>` (only when the
salt is not empty), then `3:seqi<seq>e1:v`, then the bencoded value. `ItemError`
carries BEP 44's error codes, which a storing node sends back.
"""

from dataclasses import dataclass

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from ..errors import RemoteProtocolError

try:  # the built-in SHA-1: hashlib would map libcrypto into a router's memory
    from _sha1 import sha1 as _sha1  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - builds without it
    from hashlib import sha1 as _sha1

MAX_VALUE = 1000
MAX_SALT = 64
MAX_SEQ = (1 << 63) - 1

VALUE_TOO_BIG = 205
INVALID_SIGNATURE = 206
SALT_TOO_BIG = 207
CAS_MISMATCH = 301
SEQ_TOO_LOW = 302


class ItemError(RemoteProtocolError):
    def __init__(self, code: int, detail: str) -> None:
        super().__init__(f"item_{code}", detail)
        self.code = code
        self.detail = detail


def sha1(data: bytes) -> bytes:
    digest: bytes = _sha1(data).digest()
    return digest


def immutable_target(value: bytes) -> bytes:
    """The target of an immutable item: the SHA-1 of its bencoded value."""
    return sha1(value)


def mutable_target(key: bytes, salt: bytes = b"") -> bytes:
    return sha1(key + salt)


def signed_buffer(seq: int, value: bytes, salt: bytes = b"") -> bytes:
    salted = b"4:salt%d:%s" % (len(salt), salt) if salt else b""
    return salted + b"3:seqi%de1:v" % seq + value


@dataclass(frozen=True, slots=True)
class MutableItem:
    key: bytes  # the Ed25519 public key
    seq: int
    value: bytes  # bencoded, verbatim
    sig: bytes
    salt: bytes = b""

    @property
    def target(self) -> bytes:
        return mutable_target(self.key, self.salt)

    def check(self) -> None:
        """Raise ItemError unless sizes, sequence and signature are all good."""
        if len(self.value) > MAX_VALUE:
            raise ItemError(VALUE_TOO_BIG, f"value of {len(self.value)} bytes")
        if len(self.salt) > MAX_SALT:
            raise ItemError(SALT_TOO_BIG, f"salt of {len(self.salt)} bytes")
        if not 0 <= self.seq <= MAX_SEQ:
            raise ItemError(SEQ_TOO_LOW, "sequence number out of range")
        if len(self.key) != 32 or len(self.sig) != 64:
            raise ItemError(INVALID_SIGNATURE, "key or signature of the wrong size")
        try:
            VerifyKey(self.key).verify(signed_buffer(self.seq, self.value, self.salt), self.sig)
        except (BadSignatureError, ValueError):
            raise ItemError(INVALID_SIGNATURE, "signature does not verify") from None


def sign(key: SigningKey, value: bytes, seq: int, salt: bytes = b"") -> MutableItem:
    """A mutable item of `value` (already bencoded), signed by `key`."""
    if len(value) > MAX_VALUE:
        raise ValueError(f"a value bencodes to {len(value)} bytes; BEP 44 allows {MAX_VALUE}")
    if len(salt) > MAX_SALT:
        raise ValueError(f"a salt of {len(salt)} bytes; BEP 44 allows {MAX_SALT}")
    if not 0 <= seq <= MAX_SEQ:
        raise ValueError("seq must be a non-negative 64-bit integer")
    sig = key.sign(signed_buffer(seq, value, salt)).signature
    return MutableItem(bytes(key.verify_key), seq, value, sig, salt)
