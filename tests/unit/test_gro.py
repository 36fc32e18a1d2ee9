"""User-space GRO for TUN writes: consecutive segments of a TCP flow become one super-packet
whose headers, lengths and checksums the kernel accepts; anything else passes unchanged."""

import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6

from tidewire.node.core.gro import (
    EMPTY_HEADER,
    GSO_TCPV4,
    GSO_TCPV6,
    NEEDS_CSUM,
    VNET_HDR,
    coalesce,
)


def segments(
    n: int,
    size: int = 1000,
    v6: bool = False,
    seq0: int = 1000,
    last: int | None = None,
    sport: int = 40000,
    psh_last: bool = False,
) -> list[bytes]:
    out = []
    seq = seq0
    for i in range(n):
        plen = last if (last is not None and i == n - 1) else size
        flags = "PA" if (psh_last and i == n - 1) else "A"
        ip = (
            IPv6(src="fd00::2", dst="fd00::1")
            if v6
            else IP(src="10.0.0.2", dst="10.0.0.1", flags="DF")
        )
        pkt = (
            ip
            / TCP(sport=sport, dport=5201, seq=seq, ack=77, flags=flags, window=500)
            / (bytes([i % 251]) * plen)
        )
        out.append(bytes(pkt))
        seq += plen
    return out


def split_like_the_kernel(frame: bytes) -> tuple[tuple[int, ...], bytes]:
    hdr = VNET_HDR.unpack_from(frame)
    return hdr, frame[VNET_HDR.size :]


def _check_super(packet: bytes, originals: list[bytes], v6: bool) -> None:
    parsed = IPv6(packet) if v6 else IP(packet)
    assert bytes(parsed[TCP].payload) == b"".join(
        bytes((IPv6(o) if v6 else IP(o))[TCP].payload) for o in originals
    )
    if not v6:
        assert parsed.len == len(packet)
        recomputed = IP(bytes(parsed))
        del recomputed.chksum
        assert IP(bytes(recomputed)).chksum == parsed.chksum  # the IPv4 header checksum is valid
    else:
        assert parsed.plen == len(packet) - 40


def test_a_run_of_ipv4_segments_becomes_one_super_packet() -> None:
    segs = segments(10, last=300, psh_last=True)
    [frame] = coalesce(segs)
    (flags, gso_type, hdr_len, gso_size, csum_start, csum_offset), packet = split_like_the_kernel(
        frame
    )
    assert (flags, gso_type, hdr_len, gso_size, csum_start, csum_offset) == (
        NEEDS_CSUM,
        GSO_TCPV4,
        40,
        1000,
        20,
        16,
    )
    _check_super(packet, segs, v6=False)
    assert IP(packet)[TCP].flags == "PA"
    # the checksum field holds the folded pseudo-header sum, as CHECKSUM_PARTIAL expects
    src, dst = packet[12:16], packet[16:20]
    pseudo = sum(struct.unpack("!4H", src + dst)) + 6 + len(packet) - 20
    while pseudo >> 16:
        pseudo = (pseudo & 0xFFFF) + (pseudo >> 16)
    assert int.from_bytes(packet[36:38], "big") == pseudo


def test_ipv6_segments_too() -> None:
    segs = segments(5, v6=True)
    [frame] = coalesce(segs)
    hdr, packet = split_like_the_kernel(frame)
    assert hdr[1] == GSO_TCPV6 and hdr[3] == 1000 and hdr[4] == 40
    _check_super(packet, segs, v6=True)


def test_what_must_not_merge_is_written_as_it_came() -> None:
    a = segments(3, sport=1)
    b = segments(3, sport=2)
    gap = segments(2, seq0=5000)
    psh = segments(2, psh_last=True) + segments(2, seq0=3000)
    short_middle = segments(2, last=10) + segments(1, seq0=1010)
    udp = [bytes(IP(src="10.0.0.2", dst="10.0.0.1") / UDP(dport=53) / b"q")]
    frames = coalesce([a[0], b[0], a[1], b[1]])  # interleaved flows: runs break
    assert len(frames) == 4 and all(f[:10] == EMPTY_HEADER for f in frames)
    assert [f[10:] for f in frames] == [a[0], b[0], a[1], b[1]]
    assert len(coalesce([gap[0], segments(1, seq0=9000)[0]])) == 2  # sequence gap
    assert len(coalesce(psh)) == 2  # PSH ends a run; the next run merges
    assert len(coalesce(short_middle)) == 2  # a short segment can only end a run
    assert coalesce(udp) == [EMPTY_HEADER + udp[0]]


def _second(v6: bool, **fields: object) -> bytes:
    # the segment that would follow segments(1, v6=v6)[0], with some fields changed
    ip_fields: dict[str, Any] = {k[3:]: v for k, v in fields.items() if k.startswith("ip_")}
    tcp_fields: dict[str, Any] = {k: v for k, v in fields.items() if not k.startswith("ip_")}
    base: dict[str, Any] = (
        {"src": "fd00::2", "dst": "fd00::1"} if v6 else {"src": "10.0.0.2", "dst": "10.0.0.1"}
    )
    if not v6:
        base["flags"] = "DF"
    ip = IPv6(**{**base, **ip_fields}) if v6 else IP(**{**base, **ip_fields})
    tcp: dict[str, Any] = {
        "sport": 40000,
        "dport": 5201,
        "seq": 2000,
        "ack": 77,
        "flags": "A",
        "window": 500,
    }
    return bytes(ip / TCP(**{**tcp, **tcp_fields}) / (b"\x01" * 1000))


@pytest.mark.parametrize(
    ("v6", "change"),
    [
        (False, {}),
        (True, {}),
        (False, {"ip_ttl": 63}),
        (False, {"ip_tos": 4}),
        (False, {"ip_dst": "10.0.0.9"}),
        (False, {"ip_src": "10.0.0.9"}),
        (False, {"ip_flags": "DF+MF"}),
        (False, {"ip_frag": 125}),
        (False, {"ip_options": [b"\x01\x01\x01\x00"]}),
        (False, {"dport": 5202}),
        (False, {"ack": 78}),
        (False, {"window": 501}),
        (False, {"options": [("NOP", None), ("NOP", None), ("Timestamp", (1, 2))]}),
        (False, {"flags": "SA"}),
        (False, {"flags": "FA"}),
        (False, {"flags": "PA"}),  # PSH may end a run: it merges (checked below)
        (True, {"ip_hlim": 63}),
        (True, {"ip_tc": 4}),
        (True, {"ip_fl": 5}),
        (True, {"ip_dst": "fd00::9"}),
        (True, {"ack": 78}),
    ],
)
def test_every_field_of_the_flow_key_keeps_segments_apart(
    v6: bool, change: dict[str, object]
) -> None:
    first = segments(1, v6=v6)[0]
    frames = coalesce([first, _second(v6, **change)])
    merges = not change or change == {"flags": "PA"}
    assert len(frames) == (1 if merges else 2), change


def test_never_more_than_64_kib() -> None:
    frames = coalesce(segments(100, size=1400))
    assert len(frames) > 1 and all(len(f) - 10 <= 65535 for f in frames)
    assert sum(len(IP(f[10:])[TCP].payload) for f in frames) == 100 * 1400


# 100: a property of coalescing built packets, not a parser of random bytes (those run
# 300 examples in test_gso.py and test_dataplane_offload.py)
@settings(max_examples=100)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(1, 1400), st.booleans()), max_size=30))
def test_payload_of_every_flow_survives_in_order(spec: list[tuple[int, int, bool]]) -> None:
    seqs = [1000, 50000, 900000]
    packets, expected = [], {0: b"", 1: b"", 2: b""}
    for flow, size, advance in spec:
        payload = bytes([flow, size % 256]) * (size // 2) or b"x"
        pkt = bytes(
            IP(src="10.0.0.2", dst="10.0.0.1")
            / TCP(sport=100 + flow, dport=1, seq=seqs[flow], flags="A")
            / payload
        )
        packets.append(pkt)
        expected[flow] += payload
        if advance:
            seqs[flow] += len(payload)
    got = {0: b"", 1: b"", 2: b""}
    for frame in coalesce(packets):
        p = IP(frame[10:])
        got[p[TCP].sport - 100] += bytes(p[TCP].payload)
    assert got == expected
