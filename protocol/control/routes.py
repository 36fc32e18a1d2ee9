"""Route messages of the overlay's distance-vector protocol (docs/protocol/routes.md).

They ride the control channel (channel.py: b"TW", version, type, at most 512 bytes)
like every other control message; this module holds their bodies. The semantics are
Babel's (RFC 8966), the encodings are ours: every destination is a node key, so a
prefix is 32 bytes and needs no address-encoding byte; a link is one authenticated
peer, so there is no interface, next-hop or multicast. Numbers are big-endian.

    ROUTE_HELLO    seqno u16, interval u16 (centiseconds), timestamp u32 (µs, the
                   sender's clock; RFC 9616 section 3.1)
    IHU            rxcost u16, interval u16 (cs), origin u32 (the timestamp of the
                   last hello heard), receive u32 (when it was heard), transmit u32
                   (now); origin 0 means "no timestamps" (RFC 8966 4.6.6, RFC 9616)
    UPDATE         interval u16 (cs), count u8, then `count` entries of
                   flags u8, prefix 32, seqno u16, metric u16[, router id 32]: flag 1
                   says a router id follows, without it the router id is the prefix
                   (a node originating its own key). Metric 0xFFFF is a retraction.
    ROUTE_REQUEST  nothing (a wildcard: send me your whole table) or a prefix 32
    SEQNO_REQUEST  seqno u16, hop count u8 (at least 1), prefix 32, router id 32

`decode_body` raises RemoteProtocolError for anything else, so random bytes are a
counted drop at the control plane and never an exception.
"""

import struct
from dataclasses import dataclass

from construct import Bytes, ConstructError, Int8ub, Int16ub, Int32ub, Struct

from ..errors import RemoteProtocolError

ROUTE_HELLO, IHU, UPDATE, ROUTE_REQUEST, SEQNO_REQUEST = 16, 17, 18, 19, 20
KINDS = frozenset({ROUTE_HELLO, IHU, UPDATE, ROUTE_REQUEST, SEQNO_REQUEST})

KEY_SIZE = 32
INFINITY = 0xFFFF
BODY_MAX = 512 - 4  # channel.MAX_SIZE less the channel header
FLAG_ROUTER_ID = 0x01

_HELLO = Struct("seqno" / Int16ub, "interval" / Int16ub, "timestamp" / Int32ub)
_IHU = Struct(
    "rxcost" / Int16ub,
    "interval" / Int16ub,
    "origin" / Int32ub,
    "receive" / Int32ub,
    "transmit" / Int32ub,
)
# an UPDATE is most of what a large overlay sends (its whole table, every update
# interval, to every neighbour), so its head and entries use struct: construct took
# 30-70 µs per entry, struct well under one
_UPDATE_HEAD = struct.Struct(">HB")  # interval, count
_ENTRY = struct.Struct(f">B{KEY_SIZE}sHH")  # flags, prefix, seqno, metric
_SEQNO_REQUEST = Struct(
    "seqno" / Int16ub,
    "hop_count" / Int8ub,
    "prefix" / Bytes(KEY_SIZE),
    "router_id" / Bytes(KEY_SIZE),
)
ENTRY_SIZE: int = _ENTRY.size  # 37, and 69 with a router id
# entries of an UPDATE that fit in one message in the worst case (all with router ids)
MAX_ENTRIES = (BODY_MAX - _UPDATE_HEAD.size) // (ENTRY_SIZE + KEY_SIZE)


@dataclass(frozen=True, slots=True)
class RouteHello:
    seqno: int
    interval: int  # centiseconds
    timestamp: int  # µs modulo 2**32, 0 if none


@dataclass(frozen=True, slots=True)
class Ihu:
    rxcost: int
    interval: int  # centiseconds
    origin: int = 0
    receive: int = 0
    transmit: int = 0


@dataclass(frozen=True, slots=True)
class UpdateEntry:
    prefix: bytes
    seqno: int
    metric: int
    router_id: bytes


@dataclass(frozen=True, slots=True)
class Update:
    interval: int  # centiseconds
    entries: tuple[UpdateEntry, ...]


@dataclass(frozen=True, slots=True)
class RouteRequest:
    prefix: bytes | None  # None: the whole table


@dataclass(frozen=True, slots=True)
class SeqnoRequest:
    seqno: int
    hop_count: int
    prefix: bytes
    router_id: bytes


RouteMessage = RouteHello | Ihu | Update | RouteRequest | SeqnoRequest
KIND_OF: dict[type, int] = {
    RouteHello: ROUTE_HELLO,
    Ihu: IHU,
    Update: UPDATE,
    RouteRequest: ROUTE_REQUEST,
    SeqnoRequest: SEQNO_REQUEST,
}


def entry_size(entry: UpdateEntry) -> int:
    return ENTRY_SIZE + (0 if entry.router_id == entry.prefix else KEY_SIZE)


def pack_updates(entries: list[UpdateEntry], *, interval: int) -> list[Update]:
    """As few UPDATE messages as hold `entries`, each within the channel's size."""
    out: list[Update] = []
    batch: list[UpdateEntry] = []
    size = _UPDATE_HEAD.size
    for e in entries:
        n = entry_size(e)
        if batch and (size + n > BODY_MAX or len(batch) == 255):
            out.append(Update(interval, tuple(batch)))
            batch, size = [], _UPDATE_HEAD.size
        batch.append(e)
        size += n
    if batch:
        out.append(Update(interval, tuple(batch)))
    return out


def encode_body(msg: RouteMessage) -> bytes:
    if isinstance(msg, RouteHello):
        return bytes(
            _HELLO.build({"seqno": msg.seqno, "interval": msg.interval, "timestamp": msg.timestamp})
        )
    if isinstance(msg, Ihu):
        return bytes(
            _IHU.build(
                {
                    "rxcost": msg.rxcost,
                    "interval": msg.interval,
                    "origin": msg.origin,
                    "receive": msg.receive,
                    "transmit": msg.transmit,
                }
            )
        )
    if isinstance(msg, Update):
        parts = [_UPDATE_HEAD.pack(msg.interval, len(msg.entries))]
        for e in msg.entries:
            if len(e.prefix) != KEY_SIZE or len(e.router_id) != KEY_SIZE:
                raise ValueError("an update entry's prefix and router id are 32 bytes")
            own = e.router_id == e.prefix
            parts.append(_ENTRY.pack(0 if own else FLAG_ROUTER_ID, e.prefix, e.seqno, e.metric))
            if not own:
                parts.append(e.router_id)
        body = b"".join(parts)
        if len(body) > BODY_MAX:
            raise ValueError("update too large for one control message; use pack_updates")
        return body
    if isinstance(msg, RouteRequest):
        return b"" if msg.prefix is None else msg.prefix
    return bytes(
        _SEQNO_REQUEST.build(
            {
                "seqno": msg.seqno,
                "hop_count": msg.hop_count,
                "prefix": msg.prefix,
                "router_id": msg.router_id,
            }
        )
    )


def _decode_update(body: bytes) -> Update:
    offset = _UPDATE_HEAD.size
    if len(body) < offset:
        raise RemoteProtocolError("route_size")
    interval, count = _UPDATE_HEAD.unpack_from(body)
    entries = []
    for _ in range(count):
        if offset + ENTRY_SIZE > len(body):
            raise RemoteProtocolError("route_size")
        flags, prefix, seqno, metric = _ENTRY.unpack_from(body, offset)
        offset += ENTRY_SIZE
        if flags & ~FLAG_ROUTER_ID:
            raise RemoteProtocolError("route_flags")
        router_id = prefix
        if flags & FLAG_ROUTER_ID:
            if offset + KEY_SIZE > len(body):
                raise RemoteProtocolError("route_size")
            router_id = body[offset : offset + KEY_SIZE]
            offset += KEY_SIZE
        entries.append(UpdateEntry(prefix, seqno, metric, router_id))
    if offset != len(body):
        raise RemoteProtocolError("route_size")
    return Update(interval, tuple(entries))


def decode_body(kind: int, body: bytes) -> RouteMessage:
    """The route message of type `kind` in `body`; RemoteProtocolError for anything else."""
    try:
        if kind == ROUTE_HELLO:
            if len(body) != _HELLO.sizeof():
                raise RemoteProtocolError("route_size")
            h = _HELLO.parse(body)
            return RouteHello(h.seqno, h.interval, h.timestamp)
        if kind == IHU:
            if len(body) != _IHU.sizeof():
                raise RemoteProtocolError("route_size")
            i = _IHU.parse(body)
            return Ihu(i.rxcost, i.interval, i.origin, i.receive, i.transmit)
        if kind == UPDATE:
            return _decode_update(body)
        if kind == ROUTE_REQUEST:
            if len(body) not in (0, KEY_SIZE):
                raise RemoteProtocolError("route_size")
            return RouteRequest(bytes(body) if body else None)
        if kind == SEQNO_REQUEST:
            if len(body) != _SEQNO_REQUEST.sizeof():
                raise RemoteProtocolError("route_size")
            s = _SEQNO_REQUEST.parse(body)
            if s.hop_count == 0:
                raise RemoteProtocolError("route_hop_count")
            return SeqnoRequest(s.seqno, s.hop_count, s.prefix, s.router_id)
    except ConstructError:
        raise RemoteProtocolError("route_format") from None
    raise RemoteProtocolError("control_unknown_type")
