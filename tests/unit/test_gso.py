"""User-space segmentation of TCP super-packets read from the TUN (node/core/gso.py).

The reference for checksums and headers is scapy, which computes them independently;
the round trip through node/core/gro.py must give back the very bytes it started from.
"""

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6

from tidewire.node.core.checksum import checksum
from tidewire.node.core.gro import GSO_TCPV4, GSO_TCPV6, NEEDS_CSUM, VNET_HDR, coalesce
from tidewire.node.core.gso import Malformed, split

NO_OFFLOAD = bytes(VNET_HDR.size)


def flow(n: int, size: int, *, v6: bool, last: int, psh: bool) -> list[bytes]:
    """Consecutive segments as a sending kernel would make them (IPv4 ids counting up)."""
    out, seq = [], 4_000_000_000  # wraps past 2**32 within the flow
    for i in range(n):
        plen = last if i == n - 1 else size
        ip = (
            IPv6(src="fd00::2", dst="fd00::1", hlim=64)
            if v6
            else IP(src="10.0.0.2", dst="10.0.0.1", flags="DF", id=(65530 + i) & 0xFFFF)
        )
        flags = "PA" if psh and i == n - 1 else "A"
        tcp = TCP(sport=40000, dport=5201, seq=seq & 0xFFFFFFFF, ack=7, flags=flags, window=500)
        out.append(bytes(ip / tcp / bytes((i * 7 + j) % 256 for j in range(plen))))
        seq += plen
    return out


@settings(max_examples=80, deadline=None)
@given(
    n=st.integers(1, 40),
    size=st.sampled_from([536, 1000, 1379, 1380]),
    last=st.integers(1, 1380),
    v6=st.booleans(),
    psh=st.booleans(),
)
def test_split_undoes_coalesce_byte_for_byte(
    n: int, size: int, last: int, v6: bool, psh: bool
) -> None:
    originals = flow(n, size, v6=v6, last=min(last, size), psh=psh)
    got = [seg for frame in coalesce(originals) for seg in split(frame)]
    assert got == originals


def test_segments_are_valid_packets_with_the_right_flags() -> None:
    payload = bytes(range(256)) * 20  # 5120 bytes: 4 segments of 1400, then 920
    for v6 in (False, True):
        ip = IPv6(src="fd00::2", dst="fd00::1") if v6 else IP(src="10.0.0.2", dst="10.0.0.1", id=9)
        big = bytes(ip / TCP(seq=100, ack=5, flags="FPAC") / payload)
        ip_len = 40 if v6 else 20
        frame = (
            VNET_HDR.pack(NEEDS_CSUM, GSO_TCPV6 if v6 else GSO_TCPV4, ip_len + 20, 1400, ip_len, 16)
            + big
        )
        segs = split(frame)
        assert [len(s) - ip_len - 20 for s in segs] == [1400, 1400, 1400, 920]
        joined = b""
        for i, raw in enumerate(segs):
            pkt = IPv6(raw) if v6 else IP(raw)
            tcp = pkt[TCP]
            again = IPv6(raw) if v6 else IP(raw)
            del again[TCP].chksum
            if not v6:
                del again[IP].chksum
                assert IP(bytes(again)).chksum == pkt.chksum
                assert pkt.id == 9 + i and pkt.len == len(raw)
            else:
                assert pkt.plen == len(raw) - 40
            rebuilt = IPv6(bytes(again)) if v6 else IP(bytes(again))  # scapy's own checksums
            assert rebuilt[TCP].chksum == tcp.chksum
            assert tcp.seq == 100 + 1400 * i
            last, first = i == len(segs) - 1, i == 0
            assert bool(tcp.flags & 0x01) == last and bool(tcp.flags & 0x08) == last  # FIN, PSH
            assert bool(tcp.flags & 0x80) == first  # CWR
            joined += bytes(tcp.payload)
        assert joined == payload


@pytest.mark.parametrize("v6", [False, True])
@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_needs_csum_without_gso_is_finished(v6: bool, proto: str) -> None:
    ip = IPv6(src="fd00::2", dst="fd00::1") if v6 else IP(src="10.0.0.2", dst="10.0.0.1")
    l4 = TCP(sport=1, dport=2) if proto == "tcp" else UDP(sport=1, dport=2)
    right = bytes(ip / l4 / (b"odd length!" * 3))
    ip_len = 40 if v6 else 20
    offset = 16 if proto == "tcp" else 6
    at = ip_len + offset
    # what the kernel leaves: the pseudo-header sum, folded, not complemented
    src_dst = right[8:40] if v6 else right[12:20]
    length = len(right) - ip_len
    partial = 0xFFFF - checksum(src_dst, (6 if proto == "tcp" else 17) + length)
    unfinished = right[:at] + partial.to_bytes(2, "big") + right[at + 2 :]
    frame = VNET_HDR.pack(NEEDS_CSUM, 0, 0, 0, ip_len, offset) + unfinished
    assert split(frame) == [right]


def test_a_frame_without_offload_passes_unchanged() -> None:
    pkt = bytes(IP(dst="10.0.0.1") / UDP() / b"x")
    assert split(NO_OFFLOAD + pkt) == [pkt]


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"\x00" * 12, "tun_short"),
        (NO_OFFLOAD + bytes(65536), "tun_oversized"),
        (VNET_HDR.pack(0, 3, 0, 1400, 0, 0) + bytes(60), "tun_gso_unsupported"),  # UDP GSO
        (VNET_HDR.pack(0, GSO_TCPV4, 0, 0, 0, 0) + bytes(60), "tun_gso_unsupported"),
        (
            VNET_HDR.pack(0, GSO_TCPV4, 40, 1400, 20, 16) + bytes(IP() / UDP() / bytes(40)),
            "tun_gso_not_tcp",
        ),
        (
            VNET_HDR.pack(0, GSO_TCPV4, 40, 1400, 20, 16) + bytes(IP() / TCP())[:-4] + bytes(8),
            "tun_gso_bad_length",
        ),
        (VNET_HDR.pack(NEEDS_CSUM, 0, 0, 0, 20, 200) + bytes(IP() / TCP()), "tun_bad_csum_offset"),
    ],
)
def test_malformed_frames_are_refused_with_a_reason(frame: bytes, reason: str) -> None:
    with pytest.raises(Malformed) as info:
        split(frame)
    assert info.value.reason == reason


@settings(max_examples=300, deadline=None)
@given(
    header=st.tuples(
        st.integers(0, 255),
        st.sampled_from([0, 1, 4, 0x81, 3, 200]),
        st.integers(0, 0xFFFF),
        st.integers(0, 0xFFFF),
        st.integers(0, 0xFFFF),
        st.integers(0, 0xFFFF),
    ),
    body=st.binary(max_size=3000),
)
def test_random_frames_never_raise_anything_but_malformed(
    header: tuple[int, ...], body: bytes
) -> None:
    try:
        packets = split(struct.pack("=BBHHHH", *header) + body)
    except Malformed:
        return
    assert all(isinstance(p, bytes) for p in packets)
