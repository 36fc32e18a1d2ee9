"""Node records: what a node says about itself to anyone looking for a provider or relay.

A record is a BEP 44 mutable item, so any Mainline DHT client can fetch and check it:
its key is the node's Ed25519 key (the one receipts use), its salt is
`tidewire/v1/node`, its sequence number is the record's time in microseconds, and its
value is the canonical bencoding (sorted keys, nothing else) of a dictionary:

    key      the node's X25519 public key (32 bytes): the link's identity
    addr     overlay address (text)
    ends     endpoint URLs, one per skin ("masked://203.0.113.5:8443", ...)
    roles    "provider", "relay"
    price    price per GiB in micro-units of the reward token (integer)
    cap      shared rate in bit/s (0: not set), and `clients`, the most it serves
    load     current load in percent of capacity
    region   the region tag it announces under
    ver      software version
    exp      expiry, Unix seconds
    rprice   only on a relay that requires receipts ([relay] require_receipts): its
             price per GiB relayed, micro-units (a client with a link to it pays it)

The same four parts (key, seq, value, signature) travel in gossip, checked the same
way. `verify` refuses a bad signature, another salt, a value that is not canonical or
over 1,000 bytes, an expired record, a record whose `seq` inside and outside differ,
and fields of the wrong type; a sequence lower than one already seen is the cache's
refusal (node/core/discovery.py).

Binding the two keys. The X25519 key (`key`) is inside the value the Ed25519 key
signs, so the record key vouches for the link key, and no one else can change it. The
other way cannot be proved offline: X25519 does not sign (and a node's Ed25519 key is
derived from its X25519 private key, which no public check can follow), so anyone may
sign a record that names another node's link key. Such a record can only send clients
to that node, whose Noise handshake proves the link key and nothing the forger holds;
what it could lie about is the terms (price, load, region). The proof of the X25519
side is the session: the handshake authenticates the link key, and inside it the
provider's invoices name its Ed25519 key, so once a client has a session the node
(node/discovery.py) confirms the binding and the cache drops and refuses every record
naming that link key under another record key (`RecordCache.confirm`).
"""

import contextlib
import dataclasses
from dataclasses import dataclass

from nacl.signing import SigningKey

from ..dht import bencode
from ..dht.items import MAX_VALUE, ItemError, MutableItem, sign
from ..errors import RemoteProtocolError

SALT = b"tidewire/v1/node"
ROLES = frozenset({"provider", "relay"})
MAX_ENDPOINTS = 8
MAX_TEXT = 64
MAX_URL = 128


class RecordError(RemoteProtocolError):
    def __init__(self, detail: str) -> None:
        super().__init__("record_invalid", detail)


@dataclass(frozen=True, slots=True)
class NodeRecord:
    public_key: bytes  # X25519
    overlay: str
    endpoints: tuple[str, ...]
    roles: tuple[str, ...]
    price: int
    capacity: int
    clients: int
    load: int
    region: str
    version: str
    expiry: int
    seq: int = 0
    record_key: bytes = b""  # Ed25519, set by verify() and make()
    relay_price: int | None = None  # rprice: a relay paid with receipts, else None

    def value(self) -> bytes:
        paid = {} if self.relay_price is None else {"rprice": self.relay_price}
        return bencode.encode(
            paid
            | {
                "addr": self.overlay,
                "cap": self.capacity,
                "clients": self.clients,
                "ends": list(self.endpoints),
                "exp": self.expiry,
                "key": self.public_key,
                "load": self.load,
                "price": self.price,
                "region": self.region,
                "roles": sorted(self.roles),
                "seq": self.seq,
                "ver": self.version,
            }
        )


def make(record: NodeRecord, key: SigningKey, *, seq: int) -> MutableItem:
    """Sign a record as a BEP 44 item. `seq` is the record's time in microseconds."""
    body = dataclasses.replace(record, seq=seq)
    value = body.value()
    if len(value) > MAX_VALUE:
        raise ValueError(f"the node record encodes to {len(value)} bytes; the limit is 1000")
    return sign(key, value, seq, SALT)


def verify(item: MutableItem, *, now: float) -> NodeRecord:
    if item.salt != SALT:
        raise RecordError("not a tidewire node record (another salt)")
    try:
        item.check()
    except ItemError as exc:
        raise RecordError(exc.detail) from None
    try:
        doc = bencode.decode(item.value)
    except bencode.BencodeError:
        raise RecordError("the value is not bencoded") from None
    if not isinstance(doc, dict) or bencode.encode(doc) != item.value:
        raise RecordError("the value is not a canonical dictionary")
    rec = _parse(doc)
    if rec.seq != item.seq:
        raise RecordError("the sequence inside and outside the record differ")
    if rec.expiry <= now:
        raise RecordError("the record has expired")
    return dataclasses.replace(rec, record_key=item.key)


def _parse(doc: dict[bytes, bencode.Value]) -> NodeRecord:
    def need_int(k: bytes, hi: int = 1 << 63) -> int:
        v = doc.get(k)
        if not isinstance(v, int) or not 0 <= v < hi:
            raise RecordError(f"{k.decode()}: a non-negative integer is required")
        return v

    def need_text(v: object, what: str, size: int = MAX_TEXT) -> str:
        if not isinstance(v, bytes) or len(v) > size:
            raise RecordError(f"{what}: a short text is required")
        with contextlib.suppress(UnicodeDecodeError):
            text = v.decode()
            if text.isprintable():
                return text
        raise RecordError(f"{what}: printable UTF-8 text is required")

    key = doc.get(b"key")
    if not isinstance(key, bytes) or len(key) != 32:
        raise RecordError("key: a 32-byte public key is required")
    ends, roles = doc.get(b"ends"), doc.get(b"roles")
    if not isinstance(ends, list) or len(ends) > MAX_ENDPOINTS:
        raise RecordError(f"ends: a list of at most {MAX_ENDPOINTS} URLs is required")
    if not isinstance(roles, list):
        raise RecordError("roles: a list is required")
    role_names = tuple(need_text(r, "roles") for r in roles)
    if not set(role_names) <= ROLES:
        raise RecordError(f"roles: only {', '.join(sorted(ROLES))}")
    return NodeRecord(
        public_key=key,
        overlay=need_text(doc.get(b"addr"), "addr"),
        endpoints=tuple(need_text(e, "ends", MAX_URL) for e in ends),
        roles=role_names,
        price=need_int(b"price"),
        capacity=need_int(b"cap"),
        clients=need_int(b"clients", 1 << 32),
        load=need_int(b"load", 101),
        region=need_text(doc.get(b"region"), "region"),
        version=need_text(doc.get(b"ver"), "ver"),
        expiry=need_int(b"exp"),
        seq=need_int(b"seq"),
        relay_price=need_int(b"rprice") if b"rprice" in doc else None,
    )
