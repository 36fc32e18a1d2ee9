"""Overlay addresses and control packets (DESIGN.md, "Wire protocols").

Every tidewire node has an IPv6 overlay address derived from its public key:
fd74:7700::/32 followed by the first 96 bits of BLAKE2s("tidewire overlay v1" ||
key). Control messages are UDP datagrams between overlay addresses on port 7474,
carried inside the encrypted link and intercepted by the node before the TUN.
`build` makes the IPv6/UDP packet (with a correct UDP checksum); `parse` returns
the payload of a control packet addressed to us, or None for anything else.
"""

import struct
from ipaddress import IPv6Address

from tidewire.node.core.checksum import checksum
from tidewire.protocol.control.channel import CONTROL_PORT, LARGEST
from tidewire.protocol.link.crypto import blake2s

PREFIX = bytes.fromhex("fd747700")
_UDP = struct.Struct("!HHHH")


def overlay_address(public_key: bytes) -> bytes:
    """The 16-byte overlay IPv6 address of a node's X25519 public key."""
    return PREFIX + blake2s(b"tidewire overlay v1" + public_key).digest()[:12]


def overlay_text(public_key: bytes) -> str:
    return str(IPv6Address(overlay_address(public_key)))


def _checksum(src: bytes, dst: bytes, udp: bytes) -> int:
    pseudo = src + dst + struct.pack("!I3xB", len(udp), 17)
    return checksum(pseudo + udp) or 0xFFFF  # UDP sends a computed 0 as 0xFFFF


def build(src: bytes, dst: bytes, payload: bytes) -> bytes:
    length = 8 + len(payload)
    udp = _UDP.pack(CONTROL_PORT, CONTROL_PORT, length, 0) + payload
    udp = udp[:6] + struct.pack("!H", _checksum(src, dst, udp)) + udp[8:]
    header = struct.pack("!IHBB", 6 << 28, length, 17, 64) + src + dst
    return header + udp


def parse(packet: bytes, *, local: bytes) -> tuple[bytes, bytes] | None:
    """(source overlay address, payload) if `packet` is a control datagram to `local`."""
    if len(packet) < 48 or packet[0] >> 4 != 6 or packet[6] != 17 or packet[24:40] != local:
        return None
    sport, dport, length, _ = _UDP.unpack_from(packet, 40)
    if dport != CONTROL_PORT or sport != CONTROL_PORT or length < 8 or 40 + length > len(packet):
        return None
    if length - 8 > LARGEST:
        return None
    return packet[8:24], packet[48 : 40 + length]
