"""ICMP "too big", synthesized for a packet the tunnel cannot carry (path MTU discovery).

IPv4: Destination Unreachable, code 4 "fragmentation needed and DF set", with the
next-hop MTU in the low 16 bits of the second word (RFC 792, RFC 1191 section 4). A
packet without DF may be fragmented on the way, so it gets no such answer (None). The
quote is the offending packet from its IP header on: RFC 792 asks for the header and 64
bits of data at least, RFC 1812 section 4.3.2.3 allows as much as keeps the error
within 576 bytes, so up to 548 bytes (as Linux's icmp_send).

IPv6: Packet Too Big, type 2 code 0, with the MTU in 32 bits (RFC 4443 section 3.2),
quoting as much of the packet as keeps the error within the minimum MTU of 1280
(section 2.4 (c)): up to 1232 bytes. Its checksum covers the pseudo-header of RFC 8200
section 8.1.

Both go from `router` (the node's address on the tunnel) to the packet's source, with
a hop limit of 64. Never answered (None), as RFC 1122 section 3.2.2 and RFC 4443
section 2.4 (e) ask: an ICMP error message, a non-first IPv4 fragment, a packet to a
multicast or broadcast address or from an address that is not one host (unspecified,
loopback, multicast, broadcast, IPv4 class E). RFC 4443 would allow a Packet Too Big
for multicast; tidewire carries none, so it sends none. A packet that is truncated or
malformed gets no answer either; nothing here raises on what the network sent.
"""

import struct

from .checksum import checksum, set_ipv4_header_checksum, words
from .packet import AH, DEST_OPTIONS, FRAGMENT, HOP_BY_HOP, MAX_EXTENSION_HEADERS, ROUTING

Packet = bytes | bytearray | memoryview

ICMP = 1
ICMPV6 = 58
DEST_UNREACHABLE = 3
FRAGMENTATION_NEEDED = 4  # code of DEST_UNREACHABLE
PACKET_TOO_BIG = 2
ICMPV4_ERRORS = frozenset((3, 4, 5, 11, 12))  # unreachable, quench, redirect, time, param
ICMPV6_ERROR_LIMIT = 128  # types below are errors (RFC 4443 section 2.1)
MAX_V4_ERROR = 576  # RFC 1812 4.3.2.3
MIN_V6_MTU = 1280  # RFC 8200 section 5
MIN_V4_MTU = 68  # RFC 791
HOP_LIMIT = 64
TOS_INTERNETWORK_CONTROL = 0xC0  # precedence 6, as Linux sends its ICMP errors
_V4 = struct.Struct("!BBHHHBBH4s4s")
_V6 = struct.Struct("!IHBB16s16s")
_WALKED = frozenset((HOP_BY_HOP, ROUTING, DEST_OPTIONS, AH, FRAGMENT))


def _v4_not_one_host(first: int) -> bool:
    # 0/8 "this network", 127/8 loopback, 224/4 multicast, 240/4 class E and broadcast
    return first == 0 or first == 127 or first >= 224


def fragmentation_needed(packet: Packet, *, mtu: int, router: bytes) -> bytes | None:
    """The ICMPv4 type 3 code 4 answer to `packet` (an IPv4 packet with DF), or None."""
    if not MIN_V4_MTU <= mtu <= 0xFFFF or len(router) != 4:
        raise ValueError(f"an IPv4 MTU of {mtu} or a router address of {len(router)} bytes")
    n = len(packet)
    if n < 20 or packet[0] >> 4 != 4:
        return None
    ihl = (packet[0] & 0x0F) * 4
    total = (packet[2] << 8) | packet[3]
    if ihl < 20 or total < ihl or total > n:
        return None
    if not packet[6] & 0x40 or (packet[6] & 0x1F) or packet[7]:
        return None  # no DF: it may be fragmented; a later fragment: RFC 1122 3.2.2
    if _v4_not_one_host(packet[12]) or packet[16] >= 224:
        return None
    if packet[9] == ICMP and (total <= ihl or packet[ihl] in ICMPV4_ERRORS):
        return None  # an ICMP error, or too short to tell
    quote = bytes(packet[: min(total, MAX_V4_ERROR - 28)])
    message = bytearray(struct.pack("!BBHHH", DEST_UNREACHABLE, FRAGMENTATION_NEEDED, 0, 0, mtu))
    message += quote
    message[2:4] = checksum(message).to_bytes(2, "big")
    header = bytearray(
        _V4.pack(
            0x45,
            TOS_INTERNETWORK_CONTROL,
            20 + len(message),
            0,  # identification: the datagram is atomic (DF, no offset), RFC 6864
            0x4000,
            HOP_LIMIT,
            ICMP,
            0,
            router,
            bytes(packet[12:16]),
        )
    )
    set_ipv4_header_checksum(header)
    return bytes(header + message)


def _v6_upper(packet: Packet, total: int) -> tuple[int, int] | None:
    """(protocol, offset) after the extension headers; (FRAGMENT, -1) for a later
    fragment, which holds no upper header; None if the chain is malformed or too long."""
    proto, at = packet[6], 40
    for _ in range(MAX_EXTENSION_HEADERS):
        if proto not in _WALKED:
            return proto, at
        if at + 8 > total:
            return None
        if proto == FRAGMENT:
            if ((packet[at + 2] << 8) | packet[at + 3]) >> 3:
                return FRAGMENT, -1
            size = 8
        elif proto == AH:
            size = (packet[at + 1] + 2) * 4
        else:
            size = (packet[at + 1] + 1) * 8
        proto, at = packet[at], at + size
    return None


def packet_too_big(packet: Packet, *, mtu: int, router: bytes) -> bytes | None:
    """The ICMPv6 Packet Too Big answer to `packet` (IPv6), or None."""
    if not MIN_V6_MTU <= mtu <= 0xFFFFFFFF or len(router) != 16:
        raise ValueError(f"an IPv6 MTU of {mtu} or a router address of {len(router)} bytes")
    n = len(packet)
    if n < 40 or packet[0] >> 4 != 6:
        return None
    total = 40 + ((packet[4] << 8) | packet[5])
    if total > n:
        return None
    src = bytes(packet[8:24])
    if packet[8] == 0xFF or packet[24] == 0xFF or src in (bytes(16), bytes(15) + b"\x01"):
        return None
    upper = _v6_upper(packet, total)
    if upper is None:
        return None
    proto, at = upper
    if proto == ICMPV6 and (at >= total or packet[at] < ICMPV6_ERROR_LIMIT):
        return None  # an ICMPv6 error, or too short to tell
    quote = bytes(packet[: min(total, MIN_V6_MTU - 48)])
    message = bytearray(struct.pack("!BBHI", PACKET_TOO_BIG, 0, 0, mtu)) + quote
    pseudo = router + src + struct.pack("!I3xB", len(message), ICMPV6)
    message[2:4] = checksum(message, words(pseudo)).to_bytes(2, "big")
    header = _V6.pack(6 << 28, len(message), ICMPV6, HOP_LIMIT, router, src)
    return header + bytes(message)


def too_big(
    packet: Packet, *, mtu: int, router4: bytes | None, router6: bytes | None
) -> bytes | None:
    """The answer of the packet's IP version, from that version's router address
    (None if the node has none of that version)."""
    if not packet:
        return None
    version = packet[0] >> 4
    if version == 4 and router4 is not None:
        return fragmentation_needed(packet, mtu=mtu, router=router4)
    if version == 6 and router6 is not None:
        return packet_too_big(packet, mtu=mtu, router=router6)
    return None
