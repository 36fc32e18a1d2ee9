"""NAT traversal's control messages (docs/protocol/nat.md).

They ride the control channel (channel.py: b"TW", version, type, at most 512 bytes),
inside an authenticated link, so the sender is always a known peer. Types 40-42:

    NAT_LOOKUP     (40)  "where is K?": K's link key (32). It also says "I want to
                         reach K": a mediator introduces two of its peers only when
                         each has looked the other up (node/core/nat.py).
    NAT_INTRODUCE  (41)  "K is at these observed endpoints, punch now": K (32), a
                         count (1, 1 to MAX_ENDPOINTS), then `count` endpoints. The
                         mediator sends it to both sides at the same moment.
    NAT_OBSERVED   (42)  "your observed endpoint is X": one endpoint, as the
                         mediator's link saw the receiver's latest packet come from.

An endpoint is family (1 byte: 4 or 6), the address (4 or 16 bytes) and the port
(2 bytes, big-endian). Parsing checks the shape only: whether an endpoint is sensible
to send to (not multicast, loopback, port 0...) is the core's question, counted there.
Anything else raises RemoteProtocolError, a counted drop at the control plane.
"""

import ipaddress
import struct
from dataclasses import dataclass

from ..errors import RemoteProtocolError
from ..types import Endpoint

NAT_LOOKUP, NAT_INTRODUCE, NAT_OBSERVED = 40, 41, 42
KEY_SIZE = 32
MAX_ENDPOINTS = 4  # an introduction names at most this many: a flood is refused whole
_PORT = struct.Struct("!H")


@dataclass(frozen=True, slots=True)
class NatLookup:
    key: bytes


@dataclass(frozen=True, slots=True)
class NatIntroduce:
    key: bytes
    endpoints: tuple[Endpoint, ...]


@dataclass(frozen=True, slots=True)
class NatObserved:
    endpoint: Endpoint


NatMessage = NatLookup | NatIntroduce | NatObserved


def encode_endpoint(endpoint: Endpoint) -> bytes:
    host, port = endpoint
    addr = ipaddress.ip_address(host)
    return bytes([addr.version]) + addr.packed + _PORT.pack(port)


def _endpoint(body: bytes, at: int) -> tuple[Endpoint, int]:
    """One endpoint from `body` at offset `at`, and the offset after it."""
    if at >= len(body):
        raise RemoteProtocolError("nat_short")
    family = body[at]
    size = {4: 4, 6: 16}.get(family)
    if size is None:
        raise RemoteProtocolError("nat_family")
    end = at + 1 + size + 2
    if end > len(body):
        raise RemoteProtocolError("nat_short")
    raw = body[at + 1 : at + 1 + size]
    host = str(ipaddress.IPv4Address(raw) if size == 4 else ipaddress.IPv6Address(raw))
    return (host, _PORT.unpack_from(body, at + 1 + size)[0]), end


def build_lookup(msg: NatLookup) -> bytes:
    _check_key(msg.key)
    return msg.key


def build_introduce(msg: NatIntroduce) -> bytes:
    _check_key(msg.key)
    if not 0 < len(msg.endpoints) <= MAX_ENDPOINTS:
        raise ValueError(f"an introduction of {len(msg.endpoints)} endpoints (1 to 4)")
    return msg.key + bytes([len(msg.endpoints)]) + b"".join(map(encode_endpoint, msg.endpoints))


def build_observed(msg: NatObserved) -> bytes:
    return encode_endpoint(msg.endpoint)


def parse_lookup(body: bytes) -> NatLookup:
    if len(body) != KEY_SIZE:
        raise RemoteProtocolError("nat_size")
    return NatLookup(bytes(body))


def parse_introduce(body: bytes) -> NatIntroduce:
    if len(body) < KEY_SIZE + 1:
        raise RemoteProtocolError("nat_short")
    count = body[KEY_SIZE]
    if not 0 < count <= MAX_ENDPOINTS:
        raise RemoteProtocolError("nat_endpoints")
    at, found = KEY_SIZE + 1, []
    for _ in range(count):
        endpoint, at = _endpoint(body, at)
        found.append(endpoint)
    if at != len(body):
        raise RemoteProtocolError("nat_size")
    return NatIntroduce(bytes(body[:KEY_SIZE]), tuple(found))


def parse_observed(body: bytes) -> NatObserved:
    endpoint, at = _endpoint(body, 0)
    if at != len(body):
        raise RemoteProtocolError("nat_size")
    return NatObserved(endpoint)


def _check_key(key: bytes) -> None:
    if len(key) != KEY_SIZE:
        raise ValueError(f"a key of {len(key)} bytes ({KEY_SIZE})")
