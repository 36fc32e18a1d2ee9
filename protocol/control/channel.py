"""Messages of the native in-tunnel control channel (DESIGN.md, "Wire protocols").

They travel as UDP datagrams to the peer's overlay address on port 7474 inside
the encrypted link, so they need no crypto of their own: the link already says
which peer sent them. Every message starts with b"TW", a version byte and a
type byte; the whole message is at most 512 bytes. Accounting is the first user:

    HELLO    client -> provider  session id (chosen by the client, new each run),
                                 the client's Ed25519 key, and the last receipt it
                                 signed in the session (zeros if none), so a provider
                                 restarted from its ledger recovers receipts in flight
    INVOICE  provider -> client  the provider's counts for the session, its key
    RECEIPT  client -> provider  the signed cumulative receipt (receipts.py)
    REFUSAL  client -> provider  the client will not sign this invoice, and why
    PROBE    either way          a path check sent on one chosen path: a probe id, the
                                 sender's clock in microseconds, and whether the path is
                                 the sender's active one (docs/protocol/path-probes.md)
    PROBE_REPLY                  the answer, on the path the probe came on: the id and
                                 the probe's timestamp echoed, so the prober gets an RTT

Types 16-20 are the overlay's route messages, whose bodies live in routes.py.

Message families with their own module register in `_FAMILIES` by type byte, with
their own size limit: gossip of node records (gossip.py, types 24-26, up to 1,232
bytes, since one datagram carries a whole record); NAT traversal (nat.py, types 40-42).
"""

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from construct import Bytes, Const, ConstructError, Int8ub, Int32ub, Int64ub, Struct

from ..accounting.receipts import RECEIPT_SIZE, SIGNATURE_SIZE
from ..errors import RemoteProtocolError
from . import gossip, nat, routes

CONTROL_PORT = 7474
VERSION = 1
MAX_SIZE = 512
MAGIC = b"TW"

HELLO, INVOICE, RECEIPT, REFUSAL, PROBE, PROBE_REPLY = 1, 2, 3, 4, 5, 6

REFUSED_OVERBILLED = 1
REFUSED_REGRESSED = 2

_HEADER = Struct("magic" / Const(MAGIC), "version" / Const(VERSION, Int8ub), "type" / Int8ub)

_BODIES = {
    HELLO: Struct(
        "session_id" / Bytes(16),
        "client_key" / Bytes(32),
        "last_receipt" / Bytes(RECEIPT_SIZE + SIGNATURE_SIZE),
    ),
    INVOICE: Struct(
        "session_id" / Bytes(16),
        "provider_key" / Bytes(32),
        "seq" / Int64ub,
        "bytes_up" / Int64ub,
        "bytes_down" / Int64ub,
        "session_start_ms" / Int64ub,
        "time_ms" / Int64ub,
    ),
    RECEIPT: Struct("receipt" / Bytes(RECEIPT_SIZE + SIGNATURE_SIZE)),
    REFUSAL: Struct("session_id" / Bytes(16), "seq" / Int64ub, "reason" / Int8ub),
    PROBE: Struct("probe_id" / Int32ub, "timestamp_us" / Int64ub, "active" / Int8ub),
    PROBE_REPLY: Struct("probe_id" / Int32ub, "echo_us" / Int64ub),
}


@dataclass(frozen=True, slots=True)
class Hello:
    session_id: bytes
    client_key: bytes
    last_receipt: bytes = bytes(RECEIPT_SIZE + SIGNATURE_SIZE)


@dataclass(frozen=True, slots=True)
class Invoice:
    session_id: bytes
    provider_key: bytes
    seq: int
    bytes_up: int
    bytes_down: int
    session_start_ms: int
    time_ms: int


@dataclass(frozen=True, slots=True)
class ReceiptMessage:
    receipt: bytes  # body and signature, checked by receipts.verify


@dataclass(frozen=True, slots=True)
class Refusal:
    session_id: bytes
    seq: int
    reason: int


@dataclass(frozen=True, slots=True)
class PathProbe:
    probe_id: int  # chosen by the prober; the reply names it
    timestamp_us: int  # the prober's clock, echoed back (modulo 2**64)
    active: int  # 1: this path is the prober's active one (the other side may send on it)


@dataclass(frozen=True, slots=True)
class PathProbeReply:
    probe_id: int
    echo_us: int  # the probe's timestamp_us, as it came


Message = (
    Hello
    | Invoice
    | ReceiptMessage
    | Refusal
    | PathProbe
    | PathProbeReply
    | routes.RouteMessage
    | gossip.GossipMessage
    | nat.NatMessage
)
_TYPES: dict[type, int] = {
    Hello: HELLO,
    Invoice: INVOICE,
    ReceiptMessage: RECEIPT,
    Refusal: REFUSAL,
    PathProbe: PROBE,
    PathProbeReply: PROBE_REPLY,
}
_CLASSES: dict[int, type] = {v: k for k, v in _TYPES.items()}

# type byte -> (class, largest whole message, build the body, parse the body)
_FAMILIES: dict[int, tuple[type, int, Callable[[Any], bytes], Callable[[bytes], Any]]] = {
    gossip.RECORD_PUSH: (gossip.RecordPush, gossip.MAX_SIZE, gossip.build_push, gossip.parse_push),
    gossip.RECORD_PULL: (gossip.RecordPull, gossip.MAX_SIZE, gossip.build_pull, gossip.parse_pull),
    gossip.RECORD_DONE: (gossip.RecordDone, gossip.MAX_SIZE, gossip.build_done, gossip.parse_done),
    nat.NAT_LOOKUP: (nat.NatLookup, MAX_SIZE, nat.build_lookup, nat.parse_lookup),
    nat.NAT_INTRODUCE: (nat.NatIntroduce, MAX_SIZE, nat.build_introduce, nat.parse_introduce),
    nat.NAT_OBSERVED: (nat.NatObserved, MAX_SIZE, nat.build_observed, nat.parse_observed),
}
_FAMILY_OF: dict[type, int] = {v[0]: k for k, v in _FAMILIES.items()}
LARGEST = max([MAX_SIZE, *(v[1] for v in _FAMILIES.values())])
# the route exchange's headers, built once: an overlay sends its tables in many messages
_ROUTE_HEADER = {cls: bytes(_HEADER.build({"type": k})) for cls, k in routes.KIND_OF.items()}
_ROUTE_KIND = {h: routes.KIND_OF[cls] for cls, h in _ROUTE_HEADER.items()}


def encode(msg: Message) -> bytes:
    if isinstance(msg, routes.RouteMessage):
        return _ROUTE_HEADER[type(msg)] + routes.encode_body(msg)
    family = _FAMILY_OF.get(type(msg))
    if family is not None:
        return _HEADER.build({"type": family}) + _FAMILIES[family][2](msg)  # type: ignore[no-any-return]
    kind = _TYPES[type(msg)]
    body: bytes = _BODIES[kind].build({f.name: getattr(msg, f.name) for f in fields(msg)})
    header: bytes = _HEADER.build({"type": kind})
    return header + body


def decode(data: bytes) -> Message:
    """Parse one control message; raise RemoteProtocolError for anything else."""
    if len(data) > LARGEST:
        raise RemoteProtocolError("control_oversized")
    if len(data) < 4:
        raise RemoteProtocolError("control_short")
    route_kind = _ROUTE_KIND.get(bytes(data[:4]))
    if route_kind is not None:
        if len(data) > MAX_SIZE:
            raise RemoteProtocolError("control_oversized")
        return routes.decode_body(route_kind, data[4:])
    try:
        kind = _HEADER.parse(data[:4])["type"]
    except ConstructError:
        raise RemoteProtocolError("control_header") from None
    family = _FAMILIES.get(kind)
    if family is not None:
        if len(data) > family[1]:
            raise RemoteProtocolError("control_oversized")
        got: Message = family[3](data[4:])
        return got
    if len(data) > MAX_SIZE:
        raise RemoteProtocolError("control_oversized")
    if kind in routes.KINDS:
        return routes.decode_body(kind, data[4:])
    fmt = _BODIES.get(kind)
    if fmt is None:
        raise RemoteProtocolError("control_unknown_type")
    if len(data) - 4 != fmt.sizeof():
        raise RemoteProtocolError("control_size")
    parsed = fmt.parse(data[4:])
    if kind == PROBE and parsed["active"] > 1:
        raise RemoteProtocolError("control_probe_flag")
    cls = _CLASSES[kind]
    msg: Message = cls(**{f.name: parsed[f.name] for f in fields(cls)})
    return msg
