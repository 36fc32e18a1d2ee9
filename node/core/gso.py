"""Cutting TCP super-packets read from the TUN into segments (segmentation offload in user space).

With TUNSETOFFLOAD (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) the kernel treats the
TUN as a device that segments and checksums by itself: its TCP stack hands over
up to 64 KiB per packet, and packets may leave their checksum unfinished. Every
read then starts with a virtio_net_hdr (include/uapi/linux/virtio_net.h), and the
node must do what the hardware would have done before encrypting:

- gso_type TCPV4 or TCPV6: cut the payload after the IP and TCP headers into
  `gso_size` pieces; each segment gets a copy of the headers with its own
  sequence number, IP length (IPv4: identification + i and a fresh header
  checksum), FIN and PSH only on the last, CWR only on the first, and a complete
  TCP checksum. This is what Linux's tcp_gso_segment and wireguard-go's
  tun/offload_linux.go gsoSplit do.
- NEEDS_CSUM without GSO: the field at csum_start + csum_offset holds the
  pseudo-header sum; finish it over the bytes from csum_start (TCP or UDP).

Checksums come from node/core/checksum.py.

Malformed frames raise `Malformed` with a reason; nothing here does I/O.
"""

from .checksum import checksum, complement, set_ipv4_header_checksum, words
from .gro import GSO_NONE, GSO_TCPV4, GSO_TCPV6, NEEDS_CSUM, VNET_HDR, VNET_HDR_LEN

GSO_ECN = 0x80
FIN, PSH, CWR = 0x01, 0x08, 0x80
MAX_FRAME = VNET_HDR_LEN + 65535


class Malformed(ValueError):
    """A frame from the TUN that cannot be a packet; `.reason` names the fault."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def split(frame: bytes | bytearray | memoryview) -> list[bytes]:
    """The IP packets carried by one TUN read (virtio_net_hdr first), checksums finished."""
    if len(frame) < VNET_HDR_LEN + 20:
        raise Malformed("tun_short")
    if len(frame) > MAX_FRAME:
        raise Malformed("tun_oversized")
    flags, gso_type, _, gso_size, csum_start, csum_offset = VNET_HDR.unpack_from(frame)
    gso_type &= ~GSO_ECN
    pkt = bytes(frame[VNET_HDR_LEN:])
    if gso_type == GSO_NONE:
        if flags & NEEDS_CSUM:
            return [_finish(pkt, csum_start, csum_offset)]
        return [pkt]
    if gso_type not in (GSO_TCPV4, GSO_TCPV6) or gso_size == 0:
        raise Malformed("tun_gso_unsupported")
    return _segment(pkt, v6=gso_type == GSO_TCPV6, mss=gso_size)


def _finish(pkt: bytes, start: int, offset: int) -> bytes:
    at = start + offset
    if start < 20 or at + 2 > len(pkt):
        raise Malformed("tun_bad_csum_offset")
    partial = (pkt[at] << 8) | pkt[at + 1]
    data = pkt[start:at] + b"\x00\x00" + pkt[at + 2 :]
    value = checksum(data, partial)
    if value == 0 and pkt[9 if pkt[0] >> 4 == 4 else 6] == 17:
        value = 0xFFFF  # UDP: zero means "no checksum"
    return pkt[:at] + value.to_bytes(2, "big") + pkt[at + 2 :]


def _segment(pkt: bytes, *, v6: bool, mss: int) -> list[bytes]:
    n = len(pkt)
    if v6:
        if pkt[0] >> 4 != 6 or n < 60:
            raise Malformed("tun_gso_bad_ip")
        if pkt[6] != 6:
            raise Malformed("tun_gso_not_tcp")  # extension headers: not produced by Linux TSO
        ip_len = 40
        if 40 + ((pkt[4] << 8) | pkt[5]) != n:
            raise Malformed("tun_gso_bad_length")
        pseudo = words(pkt[8:40]) + 6
    else:
        ip_len = (pkt[0] & 0x0F) * 4
        if pkt[0] >> 4 != 4 or ip_len < 20 or n < ip_len + 20:
            raise Malformed("tun_gso_bad_ip")
        if pkt[9] != 6:
            raise Malformed("tun_gso_not_tcp")
        if ((pkt[2] << 8) | pkt[3]) != n:
            raise Malformed("tun_gso_bad_length")
        pseudo = words(pkt[12:20]) + 6
    tcp_len = (pkt[ip_len + 12] >> 4) * 4
    hdr_len = ip_len + tcp_len
    if tcp_len < 20 or hdr_len > n:
        raise Malformed("tun_gso_bad_tcp")
    payload = memoryview(pkt)[hdr_len:]
    seq0 = int.from_bytes(pkt[ip_len + 4 : ip_len + 8], "big")
    flags0 = pkt[ip_len + 13]
    ip_id0 = (pkt[4] << 8) | pkt[5]
    count = max(1, -(-len(payload) // mss))
    head = bytearray(pkt[:hdr_len])
    out = []
    for i in range(count):
        chunk = payload[i * mss : (i + 1) * mss]
        total = hdr_len + len(chunk)
        head[ip_len + 4 : ip_len + 8] = ((seq0 + i * mss) & 0xFFFFFFFF).to_bytes(4, "big")
        flags = flags0
        if i < count - 1:
            flags &= ~(FIN | PSH)
        if i > 0:
            flags &= ~CWR
        head[ip_len + 13] = flags
        if v6:
            head[4:6] = (total - 40).to_bytes(2, "big")
        else:
            head[2:4] = total.to_bytes(2, "big")
            head[4:6] = ((ip_id0 + i) & 0xFFFF).to_bytes(2, "big")
            set_ipv4_header_checksum(head, ip_len)
        head[ip_len + 16 : ip_len + 18] = b"\x00\x00"
        # the TCP header's length is a multiple of 4, so the sums of header and
        # payload simply add up
        tcp_sum = complement(words(head[ip_len:]) + words(chunk) + pseudo + total - ip_len)
        head[ip_len + 16 : ip_len + 18] = tcp_sum.to_bytes(2, "big")
        out.append(bytes(head) + chunk)
    return out
