"""ICMP "too big" synthesis: scapy parses what we build and computes the same checksums;
the quote is as long as RFC 1812 (IPv4, 576 bytes in all) and RFC 4443 2.4 (IPv6, 1280)
allow; no answer to ICMP errors, multicast, broadcast or non-hosts; random bytes never
raise."""

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoRequest,
    ICMPv6PacketTooBig,
    IPv6,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
)

from tidewire.node.core.checksum import checksum
from tidewire.node.core.icmp import fragmentation_needed, packet_too_big, too_big

R4 = bytes([10, 99, 0, 1])
R6 = bytes.fromhex("fd99" + "00" * 13 + "01")


def v4(size: int = 1500, **ip: Any) -> bytes:
    fields: dict[str, Any] = {"src": "10.99.0.2", "dst": "192.0.2.7", "flags": "DF"}
    fields.update(ip)
    return bytes(IP(**fields) / TCP(sport=40000, dport=443, flags="A") / bytes(size - 40))


def v6(size: int = 1500, **ip: Any) -> bytes:
    fields: dict[str, Any] = {"src": "fd99::2", "dst": "2001:db8::7"}
    fields.update(ip)
    return bytes(IPv6(**fields) / UDP(sport=40000, dport=443) / bytes(size - 48))


@pytest.mark.parametrize(("size", "quoted"), [(1500, 548), (100, 100), (548, 548), (549, 548)])
def test_fragmentation_needed(size: int, quoted: int) -> None:
    offending = v4(size) + bytes(7)  # WireGuard padding after the claimed length
    got = fragmentation_needed(offending, mtu=1420, router=R4)
    assert got is not None and len(got) == 20 + 8 + quoted <= 576
    parsed = IP(got)
    assert (parsed.src, parsed.dst, parsed.proto, parsed.ttl) == ("10.99.0.1", "10.99.0.2", 1, 64)
    icmp = parsed[ICMP]
    assert (icmp.type, icmp.code, icmp.nexthopmtu) == (3, 4, 1420)
    assert got[28:] == offending[:quoted]  # the quote, from the IP header on
    again = IP(got)
    del again.chksum
    del again[ICMP].chksum  # scapy sums both again
    assert bytes(again) == got


@pytest.mark.parametrize(("size", "quoted"), [(1500, 1232), (200, 200), (1232, 1232)])
def test_packet_too_big(size: int, quoted: int) -> None:
    offending = v6(size) + bytes(5)
    got = packet_too_big(offending, mtu=1400, router=R6)
    assert got is not None and len(got) == 48 + quoted <= 1280
    parsed = IPv6(got)
    assert (parsed.src, parsed.dst, parsed.nh, parsed.hlim) == ("fd99::1", "fd99::2", 58, 64)
    ptb = parsed[ICMPv6PacketTooBig]
    assert (ptb.type, ptb.code, ptb.mtu) == (2, 0, 1400)
    assert got[48:] == offending[:quoted]
    again = IPv6(got)
    del again[ICMPv6PacketTooBig].cksum  # scapy sums it with the pseudo-header
    assert bytes(again) == got


def test_too_big_dispatches_by_version() -> None:
    a = too_big(v4(), mtu=1420, router4=R4, router6=R6)
    b = too_big(v6(), mtu=1420, router4=R4, router6=R6)
    assert a is not None and IP(a)[ICMP].type == 3
    assert b is not None and IPv6(b)[ICMPv6PacketTooBig].mtu == 1420
    assert too_big(v6(), mtu=1420, router4=R4, router6=None) is None
    assert too_big(b"", mtu=1420, router4=R4, router6=R6) is None


def test_ipv6_after_extension_headers_and_first_fragment() -> None:
    p = bytes(IPv6(src="fd99::2", dst="2001:db8::7") / IPv6ExtHdrHopByHop() / UDP() / bytes(1400))
    assert packet_too_big(p, mtu=1280, router=R6) is not None
    echo = bytes(IPv6(src="fd99::2", dst="2001:db8::7") / ICMPv6EchoRequest() / bytes(1400))
    assert packet_too_big(echo, mtu=1280, router=R6) is not None  # not an error: answered


@pytest.mark.parametrize(
    "packet",
    [
        v4(flags=0),  # no DF: may be fragmented instead
        v4(flags="DF", frag=10),  # a later fragment
        bytes(
            IP(src="10.99.0.2", dst="192.0.2.7", flags="DF") / ICMP(type=3, code=1) / bytes(1400)
        ),
        bytes(IP(src="10.99.0.2", dst="192.0.2.7", flags="DF") / ICMP(type=11) / bytes(1400)),
        v4(dst="224.0.0.251"),
        v4(dst="255.255.255.255"),
        v4(dst="240.0.0.1"),
        v4(src="0.0.0.0"),
        v4(src="127.0.0.1"),
        v4(src="239.1.2.3"),
        v4()[:1000],  # shorter than it claims
        bytes(IP(src="10.99.0.2", dst="192.0.2.7", flags="DF", proto=1)),  # ICMP, no header
    ],
)
def test_no_ipv4_answer(packet: bytes) -> None:
    assert fragmentation_needed(packet, mtu=1420, router=R4) is None


@pytest.mark.parametrize(
    "packet",
    [
        bytes(IPv6(src="fd99::2", dst="2001:db8::7") / ICMPv6DestUnreach() / bytes(1400)),
        bytes(IPv6(src="fd99::2", dst="2001:db8::7") / ICMPv6PacketTooBig() / bytes(1400)),
        bytes(
            IPv6(src="fd99::2", dst="2001:db8::7")
            / IPv6ExtHdrHopByHop()
            / ICMPv6DestUnreach()
            / bytes(1400)
        ),
        v6(dst="ff02::1"),
        v6(src="ff02::1"),
        v6(src="::"),
        v6(src="::1"),
        v6()[:1000],
        bytes(IPv6(src="fd99::2", dst="2001:db8::7", nh=58)),  # ICMPv6, no header
    ],
)
def test_no_ipv6_answer(packet: bytes) -> None:
    assert packet_too_big(packet, mtu=1280, router=R6) is None


def test_later_ipv6_fragment_is_answered() -> None:
    p = bytes(IPv6(src="fd99::2", dst="2001:db8::7") / IPv6ExtHdrFragment(offset=100) / bytes(1400))
    got = packet_too_big(p, mtu=1280, router=R6)
    assert got is not None and len(got) == 1280


def test_bad_arguments_are_local_errors() -> None:
    with pytest.raises(ValueError):
        fragmentation_needed(v4(), mtu=60, router=R4)
    with pytest.raises(ValueError):
        packet_too_big(v6(), mtu=1279, router=R6)
    with pytest.raises(ValueError):
        packet_too_big(v6(), mtu=1400, router=R4)


@given(st.binary(max_size=200))
def test_random_bytes_never_raise(data: bytes) -> None:
    for got in (
        fragmentation_needed(data, mtu=1420, router=R4),
        packet_too_big(data, mtu=1280, router=R6),
    ):
        assert got is None or len(got) > 28
    if (got4 := fragmentation_needed(data, mtu=1420, router=R4)) is not None:
        assert checksum(got4[:20]) == 0 and checksum(got4[20:]) == 0  # both sum to -0
