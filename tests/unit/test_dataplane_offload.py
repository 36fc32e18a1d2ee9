"""The native TUN offloads (dataplane/src/offload.rs `split_tso`, gro.rs `coalesce`)
against the Python path's (node/core/gso.py `split`, gro.py `coalesce`), and the native
path under hostile frames.

For every frame the two must give the same packets byte for byte, or refuse with the
same reason: TCP super-packets over IPv4 (with options) and IPv6, any payload and
segment size, FIN/PSH/CWR, the ECN bit of gso_type, unfinished checksums of TCP and
UDP; and frames whose virtio-net header disagrees with the packet (sizes, offsets,
types), truncated or random. Known answers: RFC 1071's worked example in the crate's
own tests (`cargo test`), and test_gso.py's checks of Python's `split` against scapy,
which this test then extends to the native code. Nothing may raise but a refusal. TUN
writes: interleaved flows, gaps, short and PSH segments, changed fields and noise must
coalesce into the same bytes.
"""

import socket
import struct
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.packet import Packet
from scapy.utils import checksum

from tidewire.node.core.gro import (
    GSO_TCPV4,
    GSO_TCPV6,
    NEEDS_CSUM,
    VNET_HDR,
    VNET_HDR_LEN,
    coalesce,
)
from tidewire.node.core.gso import Malformed, split
from tidewire.node.dataplane import choose, load, self_test

native = load()
pytestmark = pytest.mark.skipif(
    native is None or not hasattr(native, "coalesce"),
    reason="tidewire._dataplane is not built (scripts/setup builds it with cargo)",
)


def python(frame: bytes) -> list[bytes] | str:
    try:
        return split(frame)
    except Malformed as exc:
        return exc.reason


def both(frame: bytes) -> list[bytes] | str:
    assert native is not None
    got = native.split_tso(frame)
    assert got == python(frame), frame.hex()
    assert native.split_tso(memoryview(bytearray(frame))) == got  # any buffer reads the same
    return got  # type: ignore[no-any-return]


@st.composite
def super_packets(draw: st.DrawFn) -> bytes:
    v6 = draw(st.booleans())
    payload = draw(st.binary(max_size=6000))
    flags = draw(st.sampled_from(["A", "PA", "FPA", "CA", "FPAC", "EA", ""]))
    tcp = TCP(
        sport=draw(st.integers(0, 65535)),
        dport=5201,
        seq=draw(st.integers(0, 2**32 - 1)),
        ack=draw(st.integers(0, 2**32 - 1)),
        flags=flags,
        options=draw(st.sampled_from([[], [("NOP", None), ("NOP", None), ("Timestamp", (1, 2))]])),
    )
    ip: Packet
    if v6:
        ip = IPv6(src="fd00::2", dst="fd00::1", tc=draw(st.integers(0, 255)))
    else:
        options = draw(st.sampled_from([b"", b"\x01\x01\x01\x00", b"\x94\x04\x00\x00" * 2]))
        ip = IP(src="10.0.0.2", dst="10.0.0.1", id=draw(st.integers(0, 65535)), options=options)
    pkt = bytes(ip / tcp / payload)
    ip_len = 40 if v6 else (pkt[0] & 0x0F) * 4
    hdr_len = ip_len + (pkt[ip_len + 12] >> 4) * 4
    gso_type = (GSO_TCPV6 if v6 else GSO_TCPV4) | draw(st.sampled_from([0, 0x80]))
    mss = draw(st.integers(1, 2000))
    header = VNET_HDR.pack(NEEDS_CSUM, gso_type, hdr_len, mss, ip_len, 16)
    return header + pkt


@st.composite
def unfinished(draw: st.DrawFn) -> bytes:
    """A packet whose TCP or UDP checksum the kernel left to the device (NEEDS_CSUM)."""
    v6 = draw(st.booleans())
    l4 = (
        UDP(sport=53, dport=draw(st.integers(0, 65535)))
        if draw(st.booleans())
        else TCP(flags="PA", seq=draw(st.integers(0, 2**32 - 1)))
    )
    ip: Packet = IPv6(src="fd00::2", dst="fd00::1") if v6 else IP(src="10.0.0.2", dst="10.0.0.1")
    pkt = bytearray(bytes(ip / l4 / draw(st.binary(max_size=300))))
    ip_len = 40 if v6 else 20
    offset = 6 if isinstance(l4, UDP) else 16
    # the field holds the pseudo-header sum as the kernel leaves it: any 16-bit value
    pkt[ip_len + offset : ip_len + offset + 2] = struct.pack("!H", draw(st.integers(0, 65535)))
    return VNET_HDR.pack(NEEDS_CSUM, 0, 0, 0, ip_len, offset) + bytes(pkt)


@settings(max_examples=300, deadline=None)
@given(super_packets())
def test_super_packets_split_as_the_python_path(frame: bytes) -> None:
    got = both(frame)
    assert not isinstance(got, str) or len(frame) > VNET_HDR_LEN + 65535


@settings(max_examples=200, deadline=None)
@given(unfinished())
def test_checksums_are_finished_as_the_python_path(frame: bytes) -> None:
    assert isinstance(both(frame), list)


@settings(max_examples=500, deadline=None)
@given(
    frame=st.one_of(super_packets(), unfinished()),
    flags=st.integers(0, 255),
    gso_type=st.sampled_from([0, 1, 3, 4, 5, 0x81, 0x84, 255]),
    fields=st.tuples(*[st.sampled_from([0, 1, 19, 20, 40, 59, 60, 1400, 65535])] * 4),
    cut=st.integers(0, 200),
    flip=st.integers(0, 200),
)
def test_inconsistent_headers_and_truncations_only_refuse(
    frame: bytes,
    flags: int,
    gso_type: int,
    fields: tuple[int, int, int, int],
    cut: int,
    flip: int,
) -> None:
    """The virtio-net header's fields chosen apart from the packet, the packet cut short
    or one of its header bytes changed: the same answer as Python's, never a crash."""
    broken = bytearray(VNET_HDR.pack(flags, gso_type, *fields) + frame[VNET_HDR_LEN:])
    both(bytes(broken))
    both(bytes(broken[: max(0, len(broken) - cut)]))
    both(frame[: max(0, len(frame) - cut)])
    at = VNET_HDR_LEN + flip
    if at < len(frame):
        mutated = bytearray(frame)
        mutated[at] ^= 0x5A
        both(bytes(mutated))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_only_refuse(frame: bytes) -> None:
    both(frame)


def test_a_frame_past_64_kib_is_refused() -> None:
    assert both(bytes(VNET_HDR_LEN + 65536)) == "tun_oversized"


def test_the_native_plane_cuts_tun_reads_and_its_self_test_checks_it() -> None:
    assert choose(None).split is native.split_tso
    assert choose("python").split is None

    class WrongCut:
        def __getattr__(self, name: str) -> object:
            return getattr(native, name)

        def split_tso(self, frame: bytes) -> list[bytes]:
            return [bytes(frame[VNET_HDR_LEN:])]  # the super-packet left whole

    assert self_test(WrongCut()) == "cutting a TCP super-packet differs from the Python path"


@dataclass
class Flow:
    ip: Packet  # its IP header's fields (scapy), and its addresses
    seq: int  # the next segment's
    size: int  # a full segment's payload
    udp: bytes = b""  # one UDP datagram between the same addresses


TCP_FLAGS = {"A": 0x10, "PA": 0x18, "SA": 0x12}
PATTERN = bytes(j % 251 for j in range(251 + 1000))  # payloads: a slice of it per segment
_IP4 = struct.Struct("!BBHHHBBH4s4s")
_IP6 = struct.Struct("!IHBB16s16s")
_TCP = struct.Struct("!HHIIBBHHH")


def segment(ip: Packet, *, seq: int, flags: str, payload: bytes, hop: int = 64) -> bytes:
    """bytes(ip / TCP(sport=40000, dport=5201, seq=seq, ack=9, flags=flags, window=512) /
    payload) with `hop` as the TTL or hop limit, built by hand: scapy's cost per packet
    made the coalescing property 3 s of the unit suite. Held to scapy's own bytes by
    test_the_segment_builder_builds_what_scapy_builds."""
    v6 = isinstance(ip, IPv6)
    family = socket.AF_INET6 if v6 else socket.AF_INET
    src, dst = socket.inet_pton(family, ip.src), socket.inet_pton(family, ip.dst)
    length = 20 + len(payload)
    if v6:
        pseudo = src + dst + struct.pack("!IxxxB", length, 6)
        head = _IP6.pack(6 << 28, length, 6, hop, src, dst)
    else:
        pseudo = src + dst + struct.pack("!xBH", 6, length)
        head = _IP4.pack(0x45, 0, 20 + length, 1, 0, hop, 6, 0, src, dst)
        head = head[:10] + struct.pack("!H", checksum(head)) + head[12:]
    tcp = _TCP.pack(40000, 5201, seq, 9, 5 << 4, TCP_FLAGS[flags], 512, 0, 0) + payload
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    return head + tcp


@st.composite
def tun_batches(draw: st.DrawFn) -> list[bytes]:
    """What a batch of opened packets looks like: interleaved runs of a few TCP flows
    (segments that follow or skip, full or short, with PSH or other flags, IPv4 and
    IPv6), some fields changed mid-run, UDP, and random bytes."""
    flows: list[Flow] = []
    for k in range(draw(st.integers(1, 3))):
        v6 = draw(st.booleans())
        ip: Packet = (
            IPv6(src="fd00::2", dst=f"fd00::{k + 1}") if v6 else IP(src="10.0.0.2", dst="10.0.0.1")
        )
        seq = draw(st.integers(0, 2**32 - 1))
        size = draw(st.sampled_from([100, 1000]))
        flows.append(Flow(ip, seq, size, bytes(ip / UDP(dport=53) / b"q")))
    out: list[bytes] = []
    for _ in range(draw(st.integers(1, 60))):
        f = draw(st.sampled_from(flows))
        seq, size = f.seq, f.size
        kind = draw(
            st.sampled_from(["next"] * 6 + ["short", "psh", "gap", "syn", "udp", "noise", "ttl"])
        )
        if kind == "noise":
            out.append(draw(st.binary(max_size=80)))
            continue
        if kind == "udp":
            out.append(f.udp)
            continue
        plen = draw(st.integers(0, size - 1)) if kind == "short" else size
        flags = {"psh": "PA", "syn": "SA"}.get(kind, "A")
        if kind == "gap":
            seq = (seq + 1) & 0xFFFFFFFF
        payload = PATTERN[seq % 251 : seq % 251 + plen]  # byte j is (seq + j) % 251
        hop = 3 if kind == "ttl" else 64
        out.append(segment(f.ip, seq=seq, flags=flags, payload=payload, hop=hop))
        f.seq = (seq + plen) & 0xFFFFFFFF
    return out


@settings(max_examples=50, deadline=None)
@given(
    v6=st.booleans(),
    seq=st.integers(0, 2**32 - 1),
    flags=st.sampled_from(sorted(TCP_FLAGS)),
    payload=st.binary(max_size=1500),
    hop=st.sampled_from([3, 64]),
)
def test_the_segment_builder_builds_what_scapy_builds(
    v6: bool, seq: int, flags: str, payload: bytes, hop: int
) -> None:
    ip: Packet = IPv6(src="fd00::2", dst="fd00::3") if v6 else IP(src="10.0.0.2", dst="10.0.0.1")
    layer = ip.copy()
    if v6:
        layer.hlim = hop
    else:
        layer.ttl = hop
    tcp = TCP(sport=40000, dport=5201, seq=seq, ack=9, flags=flags, window=512)
    assert segment(ip, seq=seq, flags=flags, payload=payload, hop=hop) == bytes(
        layer / tcp / payload
    )


@settings(max_examples=100, deadline=None)
@given(tun_batches())
def test_tun_writes_coalesce_as_the_python_path(packets: list[bytes]) -> None:
    assert native is not None
    got = native.coalesce(packets)
    assert got == coalesce(packets)
    for frame in got:  # and the kernel's view: cutting each write again, as Python does
        both(frame)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=1600), max_size=30))
def test_random_packets_are_written_as_they_came(packets: list[bytes]) -> None:
    assert native is not None
    assert native.coalesce(packets) == coalesce(packets)
