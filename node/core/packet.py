"""Just enough of the inner IP header for routing, policy and accounting (RFC 791, RFC 8200).

`inspect` reads the version, the length the header claims, the source and
destination addresses (as integers), the transport protocol and destination
port, without copying. A packet that is too short, of another version, or
whose claimed length exceeds what arrived is refused (None). Decrypted
packets carry WireGuard's zero padding, so the claimed length trims them.

IPv6 extension headers (RFC 8200 section 4: hop-by-hop 0, routing 43,
fragment 44, destination options 60; AH 51 of RFC 4302) are walked to the
transport header, so a port behind them is seen; the common packet has none and
pays one set lookup. The walk is bounded (MAX_EXTENSION_HEADERS, and the
extension headers must lie within the first MAX_HEADER_CHAIN bytes): a chain
that is longer, or runs past the packet, is refused like any malformed packet.

Fragments (`frag`): a non-first fragment (offset > 0, IPv4 or IPv6) carries no
transport header, so it has no port (FRAG_LATER); a first fragment (offset 0,
more to come) has its port only if the whole transport header came with it
(FRAG_FIRST, dport -1 otherwise). The exit policy decides what to do with them.
"""

import struct
from typing import NamedTuple

_V4 = struct.Struct("!BBHHHBBH4s4s")
_V6_LEN = struct.Struct("!H")
_PORTS = struct.Struct("!HH")

TCP = 6
UDP = 17
ICMP = 1
ICMPV6 = 58

HOP_BY_HOP = 0
ROUTING = 43
FRAGMENT = 44
AH = 51
DEST_OPTIONS = 60
EXTENSION_HEADERS = frozenset((HOP_BY_HOP, ROUTING, FRAGMENT, AH, DEST_OPTIONS))
MAX_EXTENSION_HEADERS = 8  # more than any real packet carries; bounds the walk
MAX_HEADER_CHAIN = 40 + 512  # bytes: the extension headers must end within this
TRANSPORT_HEADER = {TCP: 20, UDP: 8}  # bytes a first fragment must carry for its port

FRAG_NONE = 0  # not a fragment
FRAG_FIRST = 1  # offset 0, more fragments follow
FRAG_LATER = 2  # offset > 0: no transport header in this packet


class Inner(NamedTuple):
    version: int
    length: int  # claimed total length in bytes
    src: int
    dst: int
    proto: int  # transport protocol (IPv6: after the extension headers)
    dport: int  # destination port for TCP/UDP, else -1
    frag: int = FRAG_NONE


def inspect(packet: bytes | memoryview) -> Inner | None:
    n = len(packet)
    if n < 20:
        return None
    version = packet[0] >> 4
    if version == 4:
        ihl = (packet[0] & 0x0F) * 4
        total = (packet[2] << 8) | packet[3]
        if ihl < 20 or total < ihl or total > n:
            return None
        proto = packet[9]
        src = int.from_bytes(packet[12:16], "big")
        dst = int.from_bytes(packet[16:20], "big")
        dport = -1
        if packet[6] & 0x3F or packet[7]:  # MF set, or an offset: a fragment
            if (packet[6] & 0x1F) or packet[7]:
                return Inner(4, total, src, dst, proto, -1, FRAG_LATER)
            if total >= ihl + TRANSPORT_HEADER.get(proto, 1 << 16):
                dport = (packet[ihl + 2] << 8) | packet[ihl + 3]
            return Inner(4, total, src, dst, proto, dport, FRAG_FIRST)
        if proto in (TCP, UDP) and total >= ihl + 4:
            dport = (packet[ihl + 2] << 8) | packet[ihl + 3]
        return Inner(4, total, src, dst, proto, dport)
    if version == 6:
        if n < 40:
            return None
        total = 40 + ((packet[4] << 8) | packet[5])
        if total > n:
            return None
        proto = packet[6]
        src = int.from_bytes(packet[8:24], "big")
        dst = int.from_bytes(packet[24:40], "big")
        if proto in EXTENSION_HEADERS:
            return _walk_v6(packet, total, src, dst)
        dport = -1
        if proto in (TCP, UDP) and total >= 44:
            dport = (packet[42] << 8) | packet[43]
        return Inner(6, total, src, dst, proto, dport)
    return None


def _walk_v6(packet: bytes | memoryview, total: int, src: int, dst: int) -> Inner | None:
    """Follow the extension headers of an IPv6 packet to its transport header."""
    proto = packet[6]
    at = 40
    frag = FRAG_NONE
    limit = min(total, MAX_HEADER_CHAIN)
    for _ in range(MAX_EXTENSION_HEADERS):
        if proto not in EXTENSION_HEADERS:
            break
        if at + 8 > limit:
            return None
        nxt = packet[at]
        if proto == FRAGMENT:
            if frag != FRAG_NONE:
                return None  # two fragment headers: malformed (RFC 8200 4.1)
            offset = ((packet[at + 2] << 8) | packet[at + 3]) >> 3
            more = packet[at + 3] & 1
            if offset:
                return Inner(6, total, src, dst, nxt, -1, FRAG_LATER)
            if more:
                frag = FRAG_FIRST
            # offset 0 and no more fragments: an atomic fragment (RFC 6946), whole
            size = 8
        elif proto == AH:
            size = (packet[at + 1] + 2) * 4  # RFC 4302 2.2: in 4-byte units, minus 2
        else:
            size = (packet[at + 1] + 1) * 8  # RFC 8200 4.3-4.6: in 8-byte units, minus 1
        at += size
        proto = nxt
    else:
        if proto in EXTENSION_HEADERS:
            return None  # too many extension headers to check
    if at > limit:
        return None
    dport = -1
    if proto in (TCP, UDP):
        need = TRANSPORT_HEADER[proto] if frag == FRAG_FIRST else 4
        if total >= at + need:
            dport = (packet[at + 2] << 8) | packet[at + 3]
    return Inner(6, total, src, dst, proto, dport, frag)
