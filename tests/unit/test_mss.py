"""MSS clamping of SYN and SYN-ACK segments: the option rewritten wherever it sits, the TCP
checksum updated to what a full recomputation (ours and scapy's) gives, and everything
else returned as the same object."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop
from scapy.packet import Packet as ScapyPacket

from tidewire.node.core.mss import clamp_mss, mss_for

FULL_OPTIONS = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 2)), ("NOP", None), ("WScale", 7)]


def syn(
    options: list[tuple[str, object]], *, v6: bool = False, flags: str = "S", ext: bool = False
) -> bytes:
    ip: ScapyPacket = (
        IPv6(src="fd00::2", dst="2001:db8::7") if v6 else IP(src="10.0.0.2", dst="192.0.2.7")
    )
    if ext:
        ip = ip / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt()
    return bytes(ip / TCP(sport=40000, dport=443, flags=flags, seq=7, options=options) / b"hi")


def reparsed(data: bytes, v6: bool) -> ScapyPacket:
    return IPv6(data) if v6 else IP(data)


def checksum_is_right(data: bytes, v6: bool) -> bool:
    again = reparsed(data, v6)
    del again[TCP].chksum  # scapy sums the segment and its pseudo-header itself
    return bytes(again) == data


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("flags", ["S", "SA"])
@pytest.mark.parametrize(
    "options",
    [
        FULL_OPTIONS,
        [("NOP", None), ("MSS", 1460)],  # the value at an odd offset: two words change
        [("NOP", None), ("NOP", None), ("NOP", None), ("MSS", 65535)],
        [("WScale", 7), ("MSS", 8960), ("EOL", None)],
    ],
    ids=["linux", "odd", "three-nops", "after-wscale"],
)
def test_clamps_and_keeps_the_checksum_right(
    v6: bool, flags: str, options: list[tuple[str, object]]
) -> None:
    packet = syn(options, v6=v6, flags=flags)
    assert checksum_is_right(packet, v6)
    got = clamp_mss(packet, 1380)
    assert got is not packet and len(got) == len(packet)
    parsed = reparsed(bytes(got), v6)
    assert dict((k, v) for k, v in parsed[TCP].options)["MSS"] == 1380
    assert checksum_is_right(bytes(got), v6)
    others = [o for o in parsed[TCP].options if o[0] != "MSS"]
    assert others == [o for o in reparsed(packet, v6)[TCP].options if o[0] != "MSS"]


def test_ipv6_extension_headers_are_walked() -> None:
    packet = syn(FULL_OPTIONS, v6=True, ext=True)
    got = clamp_mss(packet, 1220)
    assert dict(IPv6(bytes(got))[TCP].options)["MSS"] == 1220
    assert checksum_is_right(bytes(got), True)


def test_partial_checksum_field_is_left_alone() -> None:
    packet = syn(FULL_OPTIONS)
    got = clamp_mss(packet, 1380, partial=True)
    assert dict(IP(bytes(got))[TCP].options)["MSS"] == 1380
    assert got[36:38] == packet[36:38]  # TCP checksum at IPv4 20 + TCP 16


@pytest.mark.parametrize(
    "packet",
    [
        syn(FULL_OPTIONS, flags="A"),  # not a SYN
        syn(FULL_OPTIONS, flags="PA"),
        syn([("SAckOK", b""), ("WScale", 7)]),  # no MSS option
        syn([("MSS", 1380)]),  # already at the clamp
        syn([("MSS", 536)]),  # below it: never raised
        syn([("EOL", None), ("MSS", 1460)]),  # after the end of the options
        bytes(
            IP(src="10.0.0.2", dst="192.0.2.7", flags="MF")
            / TCP(flags="S", options=[("MSS", 1460)])
        ),
        bytes(IPv6() / IPv6ExtHdrFragment() / TCP(flags="S", options=[("MSS", 1460)])),
        syn(FULL_OPTIONS)[:30],  # truncated below the claimed length
    ],
)
def test_everything_else_is_the_same_object(packet: bytes) -> None:
    assert clamp_mss(packet, 1380) is packet


def test_malformed_options_end_the_walk() -> None:
    good = bytearray(syn([("NOP", None), ("MSS", 1460)]))
    for length in (0, 1, 200):  # under 2 (no progress) or past the header
        bad = bytearray(good)
        bad[20 + 20 + 1 + 1] = length  # the MSS option's length byte
        for kind in (2, 30):
            bad[20 + 20 + 1] = kind
            assert clamp_mss(bytes(bad), 1380) == bytes(bad)
    bad = bytearray(good)
    bad[20 + 12] = 0xF0  # a data offset of 60 bytes, past the packet's end
    assert clamp_mss(bytes(bad), 1380) == bytes(bad)


def test_mss_for() -> None:
    assert mss_for(1420, 4) == 1380 and mss_for(1420, 6) == 1360 and mss_for(1280, 6) == 1220
    with pytest.raises(ValueError):
        mss_for(1420, 5)
    with pytest.raises(ValueError):
        clamp_mss(b"", 0)


@given(st.binary(max_size=120), st.integers(1, 65535))
def test_random_bytes_never_raise(data: bytes, mss: int) -> None:
    got = clamp_mss(data, mss)
    assert got is data or len(got) == len(data)


@given(st.integers(0, 3), st.integers(1, 65535), st.integers(1, 65535), st.booleans())
def test_any_alignment_and_value(nops: int, value: int, clamp: int, v6: bool) -> None:
    packet = syn([("NOP", None)] * nops + [("MSS", value)], v6=v6)
    got = clamp_mss(packet, clamp)
    if value <= clamp:
        assert got is packet
    else:
        assert dict(reparsed(bytes(got), v6)[TCP].options)["MSS"] == clamp
        assert checksum_is_right(bytes(got), v6)
