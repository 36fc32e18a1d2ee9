"""KRPC, the DHT's message layer (BEP 5): bencoded dictionaries over UDP.

`parse` turns a datagram into a `Query`, `Response` or `Error`, or raises a
`RemoteProtocolError` whose reason the shell counts: what a stranger sends is checked
here once (types, the 20-byte sender id, sizes), so the node's logic sees only
well-formed messages. `raw_value` keeps the verbatim bytes of a `v` (BEP 44 signs
them). The compact forms of nodes (26 or 38 bytes) and peers (6 or 18 bytes) are
here too, with the top-level `ip` of BEP 42.
"""

import ipaddress
from dataclasses import dataclass, field

from ..errors import RemoteProtocolError
from . import bencode
from .bencode import Value
from .ids import ID_SIZE

Address = tuple[str, int]

MAX_TRANSACTION = 16
GENERIC_ERROR, SERVER_ERROR, PROTOCOL_ERROR, METHOD_UNKNOWN = 201, 202, 203, 204


def _refuse(reason: str, detail: str = "") -> RemoteProtocolError:
    return RemoteProtocolError("krpc_" + reason, detail)


@dataclass(frozen=True, slots=True)
class Query:
    t: bytes
    q: bytes
    sender: bytes
    args: dict[bytes, Value]
    raw_value: bytes | None = None  # the verbatim `v` of a put
    read_only: bool = False  # BEP 43


@dataclass(frozen=True, slots=True)
class Response:
    t: bytes
    sender: bytes
    values: dict[bytes, Value]
    raw_value: bytes | None = None  # the verbatim `v` of a get's answer
    ip: Address | None = None  # our address as the responder saw it (BEP 42)


@dataclass(frozen=True, slots=True)
class Error:
    t: bytes
    code: int
    message: bytes = field(default=b"")


Message = Query | Response | Error


def parse(data: bytes) -> Message:
    doc = bencode.decode(data)
    if not isinstance(doc, dict):
        raise _refuse("not_a_dict")
    t, y = doc.get(b"t"), doc.get(b"y")
    if not isinstance(t, bytes) or len(t) > MAX_TRANSACTION:
        raise _refuse("bad_transaction")
    if y == b"q":
        q, args = doc.get(b"q"), doc.get(b"a")
        if not isinstance(q, bytes) or not isinstance(args, dict):
            raise _refuse("bad_query")
        sender = _id(args)
        raw = _raw(data, b"a", args)
        return Query(t, q, sender, args, raw, read_only=doc.get(b"ro") == 1)
    if y == b"r":
        r = doc.get(b"r")
        if not isinstance(r, dict):
            raise _refuse("bad_response")
        sender = _id(r)
        ip = doc.get(b"ip")
        seen = decode_address(ip) if isinstance(ip, bytes) and len(ip) in (6, 18) else None
        return Response(t, sender, r, _raw(data, b"r", r), seen)
    if y == b"e":
        e = doc.get(b"e")
        if not isinstance(e, list) or len(e) < 1 or not isinstance(e[0], int):
            raise _refuse("bad_error")
        message = e[1] if len(e) > 1 and isinstance(e[1], bytes) else b""
        return Error(t, e[0], message)
    raise _refuse("bad_type")


def _id(d: dict[bytes, Value]) -> bytes:
    sender = d.get(b"id")
    if not isinstance(sender, bytes) or len(sender) != ID_SIZE:
        raise _refuse("bad_id")
    return sender


def _raw(data: bytes, outer: bytes, inner: dict[bytes, Value]) -> bytes | None:
    if b"v" not in inner:
        return None
    start, _ = bencode.spans(data, 0)[outer]
    v_start, v_end = bencode.spans(data, start)[b"v"]
    return data[v_start:v_end]


def query(t: bytes, name: str, sender: bytes, **args: object) -> bytes:
    a: dict[str, object] = {"id": sender, **args}
    return bencode.encode({"t": t, "y": "q", "q": name, "a": a})


def response(t: bytes, sender: bytes, to: Address | None = None, **values: object) -> bytes:
    r: dict[str, object] = {"id": sender, **values}
    doc: dict[str, object] = {"t": t, "y": "r", "r": r}
    if to is not None:
        doc["ip"] = encode_address(to)
    return bencode.encode(doc)


def error(t: bytes, code: int, message: str) -> bytes:
    return bencode.encode({"t": t, "y": "e", "e": [code, message]})


# -- compact forms -----------------------------------------------------------------


def encode_address(addr: Address) -> bytes:
    return ipaddress.ip_address(addr[0]).packed + addr[1].to_bytes(2, "big")


def decode_address(raw: bytes) -> Address:
    return str(ipaddress.ip_address(raw[:-2])), int.from_bytes(raw[-2:], "big")


def encode_nodes(nodes: list[tuple[bytes, Address]]) -> bytes:
    return b"".join(node_id + encode_address(addr) for node_id, addr in nodes)


def decode_nodes(raw: Value, size: int = 26) -> list[tuple[bytes, Address]]:
    """Compact node infos: 26 bytes each for `nodes`, 38 for `nodes6`. A value of the
    wrong type or length is refused whole; nodes on port 0 are left out."""
    if not isinstance(raw, bytes) or len(raw) % size:
        raise _refuse("bad_nodes")
    out = []
    for i in range(0, len(raw), size):
        node_id, addr = raw[i : i + ID_SIZE], decode_address(raw[i + ID_SIZE : i + size])
        if addr[1]:
            out.append((node_id, addr))
    return out


def decode_peers(raw: Value) -> list[Address]:
    """`values` of a get_peers answer: compact peers of 6 (IPv4) or 18 (IPv6) bytes;
    any other entry is skipped."""
    if not isinstance(raw, list):
        raise _refuse("bad_values")
    good = (p for p in raw if isinstance(p, bytes) and len(p) in (6, 18))
    return [decode_address(p) for p in good if p[-2:] != b"\0\0"]
