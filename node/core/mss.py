"""MSS clamping: a TCP SYN or SYN-ACK through the tunnel asks for segments that fit it.

A TCP endpoint announces in its SYN the largest segment it will take (the MSS option,
kind 2 length 4, RFC 9293 section 3.7.1); an endpoint behind a tunnel would announce
its own link's, and the other side's full-size segments would then not fit the tunnel.
`clamp_mss` lowers the announced value to the one given: it finds the TCP header (IPv4,
or IPv6 after its extension headers, walked as in packet.py and as bounded), walks the
options (at most 40 bytes; every step advances; a length that is under 2 or runs past
the header ends the walk), rewrites the two bytes, and updates the TCP checksum by RFC
1624 rather than summing the segment again. An option at an odd offset (after a single
NOP) straddles two 16-bit words, so the update covers both.

Anything else comes back unchanged, the same object: not a SYN, no MSS option, an MSS
already small enough, a fragment, a truncated or malformed header, not IP at all.
A segment whose checksum is still partial (NEEDS_CSUM from the TUN: the field holds
only the pseudo-header sum, and the segment's bytes are summed later) keeps its field.
"""

from .checksum import update
from .packet import AH, DEST_OPTIONS, HOP_BY_HOP, MAX_EXTENSION_HEADERS, MAX_HEADER_CHAIN, ROUTING

Packet = bytes | bytearray | memoryview

TCP = 6
SYN = 0x02
MSS_KIND = 2
MSS_LENGTH = 4
OPTION_END = 0
OPTION_NOP = 1
_WALKED = frozenset((HOP_BY_HOP, ROUTING, DEST_OPTIONS, AH))  # a fragment header is not


def mss_for(mtu: int, version: int) -> int:
    """The MSS that fills an MTU: minus 20 bytes of TCP and 20 of IPv4 or 40 of IPv6."""
    if version not in (4, 6):
        raise ValueError(f"IP version {version} is not 4 or 6")
    mss = mtu - (40 if version == 4 else 60)
    if mss < 1:
        raise ValueError(f"an MTU of {mtu} leaves no room for a TCP segment")
    return mss


def _tcp_header(p: Packet) -> tuple[int, int] | None:
    """(offset of the TCP header, end of the packet as its IP header claims), or None."""
    n = len(p)
    if n < 20:
        return None
    version = p[0] >> 4
    if version == 4:
        ihl = (p[0] & 0x0F) * 4
        total = (p[2] << 8) | p[3]
        if ihl < 20 or total < ihl or total > n or p[9] != TCP or p[6] & 0x3F or p[7]:
            return None  # malformed, not TCP, or a fragment (MF or an offset)
        return ihl, total
    if version != 6 or n < 40:
        return None
    total = 40 + ((p[4] << 8) | p[5])
    if total > n:
        return None
    proto, at = p[6], 40
    limit = min(total, MAX_HEADER_CHAIN)
    for _ in range(MAX_EXTENSION_HEADERS):
        if proto not in _WALKED:
            break
        if at + 8 > limit:
            return None
        size = (p[at + 1] + 2) * 4 if proto == AH else (p[at + 1] + 1) * 8
        proto, at = p[at], at + size
    return (at, total) if proto == TCP and at <= limit else None


def clamp_mss(packet: Packet, mss: int, *, partial: bool = False) -> Packet:
    """The packet with a SYN's MSS option lowered to `mss` (a copy), or the same object."""
    if not 0 < mss < 65536:
        raise ValueError(f"an MSS of {mss} is not in 1-65535")
    found = _tcp_header(packet)
    if found is None:
        return packet
    at, total = found
    if total < at + 20 or not packet[at + 13] & SYN:
        return packet
    end = at + (packet[at + 12] >> 4) * 4
    if end < at + 20 or end > total:
        return packet
    i = at + 20
    while i < end:
        kind = packet[i]
        if kind == OPTION_END:
            return packet
        if kind == OPTION_NOP:
            i += 1
            continue
        if i + 1 >= end:
            return packet
        length = packet[i + 1]
        if length < 2 or i + length > end:
            return packet
        if kind == MSS_KIND and length == MSS_LENGTH:
            if (packet[i + 2] << 8) | packet[i + 3] <= mss:
                return packet
            return _rewrite(packet, at, i + 2, mss, partial)
        i += length
    return packet


def _rewrite(packet: Packet, at: int, value_at: int, mss: int, partial: bool) -> bytes:
    out = bytearray(packet)
    start = value_at & ~1  # the words holding the value: one, or two if it is odd-aligned
    stop = value_at + 2 + (value_at & 1)
    before = bytes(out[start:stop])
    out[value_at : value_at + 2] = mss.to_bytes(2, "big")
    if not partial:
        field = (out[at + 16] << 8) | out[at + 17]
        out[at + 16 : at + 18] = update(field, before, out[start:stop]).to_bytes(2, "big")
    return bytes(out)
