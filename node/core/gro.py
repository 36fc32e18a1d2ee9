"""Coalescing inbound TCP segments into one TUN write (generic receive offload in user space).

The TUN device is opened with IFF_VNET_HDR, so every write carries a 10-byte
virtio_net_hdr (include/uapi/linux/virtio_net.h). Consecutive segments of one TCP
flow from a batch are merged into a "super-packet": the first segment's headers,
the payloads back to back, the IP length (and IPv4 header checksum) rewritten, and
a header that tells the kernel to cut it again into `gso_size` segments and to
finish the TCP checksum (NEEDS_CSUM: the checksum field holds the pseudo-header
sum). The kernel then handles up to 64 KiB per system call instead of one packet.

Segments merge only when it is safe, as Linux GRO and wireguard-go's
tun/offload_linux.go decide: IPv4 without options or fragments, or IPv6 without
extension headers; the same addresses, ports, TTL/hop limit and traffic class;
identical TCP options; only ACK set (PSH allowed on the last); the same ack
number and window; sequence numbers that follow each other; every payload but the
last exactly `gso_size` long. Everything else is written as it came, with an
empty header. This module does no I/O: bytes in, (header + packet) bytes out.
"""

import struct

from .checksum import fold, set_ipv4_header_checksum, words

VNET_HDR = struct.Struct("=BBHHHH")  # flags, gso_type, hdr_len, gso_size, csum_start, csum_offset
VNET_HDR_LEN = VNET_HDR.size
NEEDS_CSUM = 1
GSO_NONE, GSO_TCPV4, GSO_TCPV6 = 0, 1, 4
EMPTY_HEADER = bytes(VNET_HDR_LEN)
MAX_SUPER = 65535
ACK, PSH = 0x10, 0x08


# the fields one C call reads for _flow: IPv4 (no options) or IPv6, then the TCP header
# up to the window; what must match within a run goes into the flow key
_V4_TCP = struct.Struct("!BBHxxHBBxx8s4sI4sBB2s")  # vihl tos total frag ttl proto addrs
_V6_TCP = struct.Struct("!4sHBB32s4sI4sBB2s")  # ver/tc/flow plen next hop addrs; then TCP


def _flow(pkt: bytes) -> tuple[tuple[object, ...], int, int, int, int, int] | None:
    """(flow key, ip header length, tcp header length, seq, payload length, flags) or None."""
    n = len(pkt)
    if n < 40:
        return None
    version = pkt[0] >> 4
    if version == 4:
        vihl, tos, total, frag, ttl, proto, addrs, ports, seq, ack, doff, flags, window = (
            _V4_TCP.unpack_from(pkt)
        )
        if vihl != 0x45 or proto != 6 or frag & 0x3FFF:  # options, MF, fragment offset
            return None
        ip_len = 20
        key_ip: tuple[object, ...] = (4, tos, ttl, addrs)
    elif version == 6:
        if n < 60:
            return None
        first, plen, proto, hop, addrs, ports, seq, ack, doff, flags, window = _V6_TCP.unpack_from(
            pkt
        )
        if proto != 6:
            return None
        ip_len = 40
        total = 40 + plen
        key_ip = (6, first, hop, addrs)  # traffic class and flow label, hop limit, addresses
    else:
        return None
    if total != n:
        return None
    tcp_len = (doff >> 4) * 4
    if tcp_len < 20 or ip_len + tcp_len > n:
        return None
    if flags & ~(ACK | PSH) or not flags & ACK:
        return None
    # ports, ack number, data offset, window and the options must all match
    key = (*key_ip, ports, ack, doff, window, pkt[ip_len + 20 : ip_len + tcp_len])
    return key, ip_len, tcp_len, seq, n - ip_len - tcp_len, flags


def coalesce(packets: list[bytes]) -> list[bytes]:
    """Turn a batch of inner packets into TUN writes (each prefixed with a virtio_net_hdr),
    merging runs of consecutive segments of the same TCP flow. Order within a flow is kept."""
    out: list[bytes] = []
    run: list[bytes] = []
    run_info: tuple[tuple[object, ...], int, int, int, int, int] | None = None
    next_seq = 0
    run_bytes = 0

    def flush() -> None:
        nonlocal run, run_info
        if run_info is not None:
            out.append(_merge(run, run_info) if len(run) > 1 else EMPTY_HEADER + run[0])
        run, run_info = [], None

    for pkt in packets:
        info = _flow(pkt)
        if info is None or info[4] == 0:
            flush()
            out.append(EMPTY_HEADER + pkt)
            continue
        if run_info is not None:
            key, ip_len, tcp_len, seq, plen, _ = info
            same = (
                key == run_info[0]
                and seq == next_seq
                and plen <= run_info[4]
                and not (run[-1][ip_len + 13] & PSH)
                and len(run[-1]) - ip_len - tcp_len == run_info[4]
                and run_bytes + plen <= MAX_SUPER
            )
            if same:
                run.append(pkt)
                next_seq = (seq + plen) & 0xFFFFFFFF
                run_bytes += plen
                continue
            flush()
        run, run_info = [pkt], info
        next_seq = (info[3] + info[4]) & 0xFFFFFFFF
        run_bytes = len(pkt)
    flush()
    return out


def _merge(run: list[bytes], info: tuple[tuple[object, ...], int, int, int, int, int]) -> bytes:
    _, ip_len, tcp_len, _, gso_size, _ = info
    hdr_len = ip_len + tcp_len
    first = run[0]
    payload = b"".join(p[hdr_len:] for p in run)
    head = bytearray(first[:hdr_len])
    total = hdr_len + len(payload)
    tcp_total = total - ip_len
    if run[-1][ip_len + 13] & PSH:
        head[ip_len + 13] |= PSH
    if ip_len == 20:
        head[2:4] = total.to_bytes(2, "big")
        set_ipv4_header_checksum(head)
        pseudo = words(head[12:20]) + 6 + tcp_total
        gso_type = GSO_TCPV4
    else:
        head[4:6] = (total - 40).to_bytes(2, "big")
        pseudo = words(head[8:40]) + 6 + tcp_total
        gso_type = GSO_TCPV6
    head[ip_len + 16 : ip_len + 18] = fold(pseudo).to_bytes(2, "big")
    vnet = VNET_HDR.pack(NEEDS_CSUM, gso_type, hdr_len, gso_size, ip_len, 16)
    return vnet + bytes(head) + payload
