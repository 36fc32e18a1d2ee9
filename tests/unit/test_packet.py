"""Inner IP header inspection: real packets (built with scapy) and random bytes."""

from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    PadN,
)
from scapy.layers.ipsec import AH

from tidewire.node.core.packet import (
    EXTENSION_HEADERS,
    FRAG_FIRST,
    FRAG_LATER,
    FRAG_NONE,
    MAX_EXTENSION_HEADERS,
    inspect,
)


def test_ipv4_tcp() -> None:
    raw = bytes(IP(src="10.0.0.2", dst="203.0.113.2") / TCP(dport=25) / b"hello")
    got = inspect(raw + bytes(11))  # WireGuard padding after the packet
    assert got is not None
    assert got.version == 4 and got.length == len(raw) and got.proto == 6 and got.dport == 25
    assert got.src == 0x0A000002 and got.dst == 0xCB007102


def test_ipv6_udp_and_icmp() -> None:
    raw = bytes(IPv6(src="fd00::2", dst="2001:db8::1") / UDP(dport=53) / b"q")
    got = inspect(raw)
    assert got is not None and got.version == 6 and got.dport == 53 and got.length == len(raw)
    ping = inspect(bytes(IP(src="10.0.0.2", dst="10.0.0.1") / ICMP()))
    assert ping is not None and ping.dport == -1


def test_claimed_length_beyond_the_data_is_refused() -> None:
    raw = bytes(IP(src="10.0.0.2", dst="10.0.0.1") / ICMP() / (b"x" * 20))
    assert inspect(raw[:-1]) is None
    assert inspect(raw[:19]) is None


@given(data=st.binary(max_size=100))
def test_random_bytes_never_raise(data: bytes) -> None:
    got = inspect(data)
    assert got is None or got.length <= len(data)


def test_ipv6_port_behind_extension_headers() -> None:
    base = IPv6(src="fd99::2", dst="2001:db8::1")
    for ext in (
        IPv6ExtHdrHopByHop(),
        IPv6ExtHdrDestOpt(),
        IPv6ExtHdrRouting(),
        IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\0" * 10)]),
        AH(nh=6, payloadlen=4, icv=bytes(12)),
    ):
        raw = bytes(base / ext / TCP(dport=25))
        got = inspect(raw)
        assert got is not None, ext.summary()
        assert (got.proto, got.dport, got.frag) == (6, 25, FRAG_NONE), ext.summary()


def test_ipv6_fragments() -> None:
    base = IPv6(src="fd99::2", dst="2001:db8::1")
    first = inspect(bytes(base / IPv6ExtHdrFragment(offset=0, m=1) / TCP(dport=25)))
    assert first is not None and (first.proto, first.dport, first.frag) == (6, 25, FRAG_FIRST)
    # a first fragment that stops inside the TCP header: no port to check
    short = bytes(base / IPv6ExtHdrFragment(offset=0, m=1, nh=6) / bytes(TCP(dport=25))[:8])
    got = inspect(short)
    assert got is not None and (got.proto, got.dport, got.frag) == (6, -1, FRAG_FIRST)
    later = inspect(bytes(base / IPv6ExtHdrFragment(offset=3, m=0, nh=6) / bytes(24)))
    assert later is not None and (later.proto, later.dport, later.frag) == (6, -1, FRAG_LATER)
    atomic = inspect(bytes(base / IPv6ExtHdrFragment(offset=0, m=0) / UDP(dport=53)))
    assert atomic is not None and (atomic.dport, atomic.frag) == (53, FRAG_NONE)


def test_ipv4_fragments() -> None:
    ip = IP(src="10.0.0.2", dst="203.0.113.2")
    first = inspect(bytes(IP(src="10.0.0.2", dst="203.0.113.2", flags="MF") / TCP(dport=25)))
    assert first is not None and (first.dport, first.frag) == (25, FRAG_FIRST)
    later = inspect(bytes(IP(src="10.0.0.2", dst="203.0.113.2", proto=6, frag=2) / bytes(24)))
    assert later is not None and (later.proto, later.dport, later.frag) == (6, -1, FRAG_LATER)
    whole = inspect(bytes(ip / TCP(dport=25)))
    assert whole is not None and whole.frag == FRAG_NONE


def test_extension_header_chains_that_cannot_be_checked_are_refused() -> None:
    base = IPv6(src="fd99::2", dst="2001:db8::1")
    too_many = base / IPv6ExtHdrDestOpt()
    for _ in range(MAX_EXTENSION_HEADERS):
        too_many = too_many / IPv6ExtHdrDestOpt()
    assert inspect(bytes(too_many / TCP(dport=25))) is None
    # a header claiming more bytes than the packet holds
    raw = bytearray(bytes(base / IPv6ExtHdrDestOpt() / TCP(dport=25)))
    raw[41] = 200
    assert inspect(bytes(raw)) is None
    # a chain reaching beyond the bound on its length
    long = base / IPv6ExtHdrDestOpt(options=[PadN(optdata=bytes(250))] * 3) / TCP(dport=25)
    assert inspect(bytes(long)) is None
    two_frags = base / IPv6ExtHdrFragment(m=1) / IPv6ExtHdrFragment() / TCP(dport=25)
    assert inspect(bytes(two_frags)) is None


@given(
    nh=st.sampled_from(sorted(EXTENSION_HEADERS)),
    body=st.binary(min_size=0, max_size=120),
)
def test_random_extension_header_chains_never_raise(nh: int, body: bytes) -> None:
    header = bytes([0x60, 0, 0, 0]) + len(body).to_bytes(2, "big") + bytes([nh, 64]) + bytes(32)
    got = inspect(header + body)
    # a later fragment's payload is not a header chain: its next-header value is only what
    # the fragment header says (the policy refuses later fragments whatever it is)
    assert got is None or (
        got.length == 40 + len(body)
        and (got.frag == FRAG_LATER or got.proto not in EXTENSION_HEADERS)
    )
