"""Wire formats of the four WireGuard messages (whitepaper section 5.4), in one place.

Construct defines each message declaratively; the rest of the code sees frozen
dataclasses. Parsing checks the exact size and the type word (type byte plus
three reserved zero bytes) first, so Construct only ever sees input of the
right length; it is never `compile()`d for untrusted input. The 16-byte
transport header is also packed and unpacked with a precompiled `struct`, which
is what the data path uses (0.3 µs against about 30 µs for Construct).
"""

import struct
from dataclasses import dataclass, fields
from typing import TypeVar

from construct import Bytes, Const, ConstructError, Int32ul, Int64ul, Struct

from ..errors import RemoteProtocolError
from .constants import (
    COOKIE_REPLY_SIZE,
    INITIATION_SIZE,
    MESSAGE_COOKIE_REPLY,
    MESSAGE_INITIATION,
    MESSAGE_RESPONSE,
    MESSAGE_TRANSPORT,
    RESPONSE_SIZE,
    TRANSPORT_HEADER_SIZE,
)

INITIATION = Struct(
    "type" / Const(MESSAGE_INITIATION, Int32ul),
    "sender" / Int32ul,
    "ephemeral" / Bytes(32),
    "encrypted_static" / Bytes(32 + 16),
    "encrypted_timestamp" / Bytes(12 + 16),
    "mac1" / Bytes(16),
    "mac2" / Bytes(16),
)

RESPONSE = Struct(
    "type" / Const(MESSAGE_RESPONSE, Int32ul),
    "sender" / Int32ul,
    "receiver" / Int32ul,
    "ephemeral" / Bytes(32),
    "encrypted_nothing" / Bytes(16),
    "mac1" / Bytes(16),
    "mac2" / Bytes(16),
)

COOKIE_REPLY = Struct(
    "type" / Const(MESSAGE_COOKIE_REPLY, Int32ul),
    "receiver" / Int32ul,
    "nonce" / Bytes(24),
    "encrypted_cookie" / Bytes(16 + 16),
)

TRANSPORT_HEADER = Struct(
    "type" / Const(MESSAGE_TRANSPORT, Int32ul),
    "receiver" / Int32ul,
    "counter" / Int64ul,
)

# The data path's header: type word, receiver index, counter.
HEADER = struct.Struct("<IIQ")
TYPE_WORD = struct.Struct("<I")

# Offsets of mac1 and mac2: everything before them is covered by the MAC.
INITIATION_MAC1_AT = INITIATION_SIZE - 32
RESPONSE_MAC1_AT = RESPONSE_SIZE - 32


@dataclass(frozen=True, slots=True)
class Initiation:
    sender: int
    ephemeral: bytes
    encrypted_static: bytes
    encrypted_timestamp: bytes
    mac1: bytes
    mac2: bytes


@dataclass(frozen=True, slots=True)
class Response:
    sender: int
    receiver: int
    ephemeral: bytes
    encrypted_nothing: bytes
    mac1: bytes
    mac2: bytes


@dataclass(frozen=True, slots=True)
class CookieReply:
    receiver: int
    nonce: bytes
    encrypted_cookie: bytes


def message_type(data: bytes) -> int:
    """The message type, or 0 if the type word is malformed (reserved bytes set, too short)."""
    if len(data) < 4:
        return 0
    word: int = TYPE_WORD.unpack_from(data)[0]
    return word if word in (1, 2, 3, 4) else 0


_T = TypeVar("_T", Initiation, Response, CookieReply)


def _parse(fmt: Struct, cls: type[_T], data: bytes, size: int, name: str) -> _T:
    if len(data) != size:
        raise RemoteProtocolError(f"{name}_size", f"{len(data)} bytes, expected {size}")
    try:
        parsed = fmt.parse(data)
    except ConstructError as exc:
        raise RemoteProtocolError(f"{name}_format", str(exc)) from None
    return cls(**{f.name: parsed[f.name] for f in fields(cls)})


def _build(fmt: Struct, msg: Initiation | Response | CookieReply) -> bytes:
    out: bytes = fmt.build({f.name: getattr(msg, f.name) for f in fields(msg)})
    return out


def parse_initiation(data: bytes) -> Initiation:
    return _parse(INITIATION, Initiation, data, INITIATION_SIZE, "initiation")


def parse_response(data: bytes) -> Response:
    return _parse(RESPONSE, Response, data, RESPONSE_SIZE, "response")


def parse_cookie_reply(data: bytes) -> CookieReply:
    return _parse(COOKIE_REPLY, CookieReply, data, COOKIE_REPLY_SIZE, "cookie_reply")


def build_initiation(m: Initiation) -> bytes:
    return _build(INITIATION, m)


def build_response(m: Response) -> bytes:
    return _build(RESPONSE, m)


def build_cookie_reply(m: CookieReply) -> bytes:
    return _build(COOKIE_REPLY, m)


def padded_length(length: int, mtu: int | None = None) -> int:
    """Plaintext length after zero padding to a multiple of 16, capped at the MTU."""
    padded = (length + 15) & ~15
    if mtu is not None and padded > mtu:
        return max(length, mtu)
    return padded


assert TRANSPORT_HEADER.sizeof() == HEADER.size == TRANSPORT_HEADER_SIZE
