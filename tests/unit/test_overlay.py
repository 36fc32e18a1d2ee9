"""Overlay addresses and control packets: a real IPv6/UDP packet (checked by scapy), parsed
back only when it is addressed to us, on the control port, from the right length."""

from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6

from tidewire.node.core import overlay


def test_address_is_in_the_prefix_and_per_key() -> None:
    a, b = overlay.overlay_address(bytes(32)), overlay.overlay_address(bytes([1]) * 32)
    assert a[:4] == b[:4] == bytes.fromhex("fd747700") and a != b
    assert overlay.overlay_text(bytes(32)).startswith("fd74:7700:")


def test_packet_is_valid_ipv6_udp() -> None:
    src, dst = overlay.overlay_address(b"a" * 32), overlay.overlay_address(b"b" * 32)
    pkt = overlay.build(src, dst, b"TW\x01\x01hello")
    parsed = IPv6(pkt)
    assert parsed[UDP].dport == 7474 and bytes(parsed[UDP].payload) == b"TW\x01\x01hello"
    original = parsed[UDP].chksum
    del parsed[UDP].chksum
    assert IPv6(bytes(parsed))[UDP].chksum == original  # scapy recomputes the same checksum
    assert overlay.parse(pkt, local=dst) == (src, b"TW\x01\x01hello")
    assert overlay.parse(pkt, local=src) is None


@given(data=st.binary(max_size=120))
def test_random_bytes_are_not_control_packets(data: bytes) -> None:
    local = overlay.overlay_address(b"x" * 32)
    assert overlay.parse(data, local=local) is None or len(data) >= 48


def test_overlay_address_known_answer() -> None:
    """Construction from node/core/overlay.py's docstring: fd74:7700::/32, then the first
    96 bits of BLAKE2s-256("tidewire overlay v1" || key). The literals were computed with
    hashlib.blake2s, not this module."""
    assert overlay.overlay_address(bytes(32)).hex() == "fd74770011b4a5f944b98f6a486e3260"
    assert overlay.overlay_address(bytes(range(32))).hex() == "fd7477004100cc8cb84d7f419a1d5b02"
    assert overlay.overlay_text(bytes(32)) == "fd74:7700:11b4:a5f9:44b9:8f6a:486e:3260"
