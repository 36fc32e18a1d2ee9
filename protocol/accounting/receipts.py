"""Usage receipts: what a client vouches it received from and sent through a provider.

A receipt is cumulative for one session: version, session id, the provider's and
the client's Ed25519 keys, a sequence number, the inner IP bytes sent up through
the provider and received down from it, the session start and the receipt time
(Unix milliseconds), and the hash of the previous receipt of the session. Its
canonical encoding is a fixed 157-byte layout (below); one Ed25519 signature by
the client covers exactly those bytes. The receipt's hash, which the next
receipt chains to and the Merkle tree of a report takes as a leaf, is BLAKE2s
of body and signature.

Ed25519 comes from libsodium through PyNaCl. A node's signing key is derived
from its X25519 private key, so it has one secret to keep: the Ed25519 seed
(RFC 8032 section 5.1.5) is BLAKE2s-256 keyed with the X25519 private key over
the ASCII string "tidewire receipt signing key v1".
"""

from dataclasses import dataclass

from construct import Bytes, Const, ConstructError, Int8ub, Int64ub, Struct
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from ..errors import LocalProtocolError, RemoteProtocolError
from ..link.crypto import blake2s

RECEIPT_VERSION = 1
ZERO_HASH = bytes(32)

RECEIPT = Struct(
    "magic" / Const(b"TWR1"),
    "version" / Const(RECEIPT_VERSION, Int8ub),
    "session_id" / Bytes(16),
    "provider_key" / Bytes(32),
    "client_key" / Bytes(32),
    "seq" / Int64ub,
    "bytes_up" / Int64ub,
    "bytes_down" / Int64ub,
    "session_start_ms" / Int64ub,
    "time_ms" / Int64ub,
    "prev_hash" / Bytes(32),
)
RECEIPT_SIZE = RECEIPT.sizeof()
SIGNATURE_SIZE = 64


@dataclass(frozen=True, slots=True)
class Receipt:
    session_id: bytes
    provider_key: bytes
    client_key: bytes
    seq: int
    bytes_up: int
    bytes_down: int
    session_start_ms: int
    time_ms: int
    prev_hash: bytes

    def encode(self) -> bytes:
        try:
            out: bytes = RECEIPT.build({k: getattr(self, k) for k in self.__slots__})
        except ConstructError as exc:
            raise LocalProtocolError(f"receipt: cannot encode ({exc})") from None
        return out

    @classmethod
    def decode(cls, body: bytes) -> "Receipt":
        if len(body) != RECEIPT_SIZE:
            raise RemoteProtocolError("receipt_size", f"{len(body)} bytes, expected {RECEIPT_SIZE}")
        try:
            c = RECEIPT.parse(body)
        except ConstructError:
            raise RemoteProtocolError("receipt_format") from None
        return cls(**{k: c[k] for k in cls.__slots__})

    @property
    def total(self) -> int:
        return int(self.bytes_up + self.bytes_down)


@dataclass(frozen=True, slots=True)
class SignedReceipt:
    receipt: Receipt
    body: bytes
    signature: bytes

    @property
    def hash(self) -> bytes:
        return receipt_hash(self.body, self.signature)

    def wire(self) -> bytes:
        return self.body + self.signature


def receipt_hash(body: bytes, signature: bytes) -> bytes:
    return blake2s(body + signature).digest()


def signing_key_from_static(x25519_private: bytes) -> SigningKey:
    """The node's Ed25519 key, derived from its X25519 private key (domain-separated)."""
    seed = blake2s(b"tidewire receipt signing key v1", key=x25519_private).digest()
    return SigningKey(seed)


def sign(receipt: Receipt, key: SigningKey) -> SignedReceipt:
    if bytes(key.verify_key) != receipt.client_key:
        raise LocalProtocolError("receipt: client_key is not the signing key's public key")
    body = receipt.encode()
    return SignedReceipt(receipt, body, key.sign(body).signature)


def verify(data: bytes) -> SignedReceipt:
    """Parse body and signature; raise RemoteProtocolError unless the client's signature holds."""
    if len(data) != RECEIPT_SIZE + SIGNATURE_SIZE:
        raise RemoteProtocolError("receipt_size")
    body, signature = data[:RECEIPT_SIZE], data[RECEIPT_SIZE:]
    receipt = Receipt.decode(body)
    try:
        VerifyKey(receipt.client_key).verify(body, signature)
    except (BadSignatureError, ValueError):
        raise RemoteProtocolError("receipt_signature") from None
    return SignedReceipt(receipt, body, signature)


def check_successor(
    prev: SignedReceipt | None, new: SignedReceipt, *, allow_gap: bool = False
) -> None:
    """A receipt must extend its session's chain: a later sequence number, the same session
    and parties, counts and time that never go down, and, when it directly follows `prev`
    (or is the session's first), the previous receipt's hash. With `allow_gap`, receipts
    lost in between are tolerated: the hash link cannot be checked across them."""
    r = new.receipt
    if prev is None:
        if r.seq == 1 and r.prev_hash != ZERO_HASH:
            raise RemoteProtocolError("receipt_chain", "the first receipt chains to nothing")
        if r.seq != 1 and not allow_gap:
            raise RemoteProtocolError(
                "receipt_sequence", "the first receipt of a session has seq 1"
            )
        return
    p = prev.receipt
    if (r.session_id, r.provider_key, r.client_key, r.session_start_ms) != (
        p.session_id,
        p.provider_key,
        p.client_key,
        p.session_start_ms,
    ):
        raise RemoteProtocolError("receipt_foreign", "another session's receipt")
    if r.seq <= p.seq or (r.seq != p.seq + 1 and not allow_gap):
        raise RemoteProtocolError("receipt_sequence", f"seq {r.seq} after {p.seq}")
    if r.bytes_up < p.bytes_up or r.bytes_down < p.bytes_down or r.time_ms < p.time_ms:
        raise RemoteProtocolError("receipt_regressed", "counts or time went down")
    if r.seq == p.seq + 1 and r.prev_hash != prev.hash:
        raise RemoteProtocolError("receipt_chain", "prev_hash is not the previous receipt's hash")
