"""Inner IP header inspection: real packets (built with scapy) and random bytes."""

from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6

from tidewire.node.core.packet import inspect


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
