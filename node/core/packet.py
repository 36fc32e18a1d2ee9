"""Just enough of the inner IP header for routing, policy and accounting (RFC 791, RFC 8200).

`inspect` reads the version, the length the header claims, the source and
destination addresses (as integers), the transport protocol and destination
port, without copying. A packet that is too short, of another version, or
whose claimed length exceeds what arrived is refused (None). Decrypted
packets carry WireGuard's zero padding, so the claimed length trims them.
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


class Inner(NamedTuple):
    version: int
    length: int  # claimed total length in bytes
    src: int
    dst: int
    proto: int  # transport protocol (IPv6: the first next-header only)
    dport: int  # destination port for TCP/UDP, else -1


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
        frag_offset = ((packet[6] & 0x1F) << 8) | packet[7]
        dport = -1
        if proto in (TCP, UDP) and frag_offset == 0 and total >= ihl + 4:
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
        dport = -1
        if proto in (TCP, UDP) and total >= 44:
            dport = (packet[42] << 8) | packet[43]
        return Inner(6, total, src, dst, proto, dport)
    return None
