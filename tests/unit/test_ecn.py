"""ECN across the tunnel: the field's bits (RFC 3168 section 5), the decapsulation table of
RFC 6040 section 4.2 cell by cell, the copy on encapsulation, and the IPv4 checksum kept
right by the incremental update (checked against a full recomputation and scapy)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6

from tidewire.node.core.checksum import set_ipv4_header_checksum
from tidewire.node.core.ecn import (
    CE,
    ECT_0,
    ECT_1,
    NOT_ECT,
    decapsulate,
    ecn_of,
    encapsulate_ecn,
    mark_ce,
    with_ecn,
)

DROP = None


def v4(ecn: int, dscp: int = 0x2E) -> bytes:
    return bytes(IP(src="10.0.0.2", dst="192.0.2.7", tos=(dscp << 2) | ecn, id=4242) / UDP() / b"x")


def v6(ecn: int, dscp: int = 0x2E) -> bytes:
    return bytes(IPv6(src="fd00::2", dst="2001:db8::7", tc=(dscp << 2) | ecn, fl=0xABCDE) / UDP())


def test_field_bits_rfc3168() -> None:
    for ecn in (NOT_ECT, ECT_1, ECT_0, CE):
        assert ecn_of(v4(ecn)) == ecn and ecn_of(v6(ecn)) == ecn
    assert (NOT_ECT, ECT_1, ECT_0, CE) == (0b00, 0b01, 0b10, 0b11)


# RFC 6040 section 4.2, Figure 4: rows are the arriving inner header, columns the arriving
# outer header; each cell the departing inner header ("drop" where the figure says <drop>).
RFC6040_FIGURE_4: dict[int, dict[int, int | None]] = {
    NOT_ECT: {NOT_ECT: NOT_ECT, ECT_0: NOT_ECT, ECT_1: NOT_ECT, CE: DROP},
    ECT_0: {NOT_ECT: ECT_0, ECT_0: ECT_0, ECT_1: ECT_1, CE: CE},
    ECT_1: {NOT_ECT: ECT_1, ECT_0: ECT_1, ECT_1: ECT_1, CE: CE},
    CE: {NOT_ECT: CE, ECT_0: CE, ECT_1: CE, CE: CE},
}
CELLS = [(i, o, out) for i, row in RFC6040_FIGURE_4.items() for o, out in row.items()]


@pytest.mark.parametrize("build", [v4, v6], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize(("inner", "outer", "departing"), CELLS)
def test_decapsulation_table(build: object, inner: int, outer: int, departing: int | None) -> None:
    assert callable(build)
    packet = build(inner)
    got = decapsulate(outer, packet)
    if departing is None:
        assert got is None
        return
    assert got is not None and ecn_of(got) == departing
    if departing == inner:
        assert got is packet  # nothing to change: not even a copy
    assert bytes(got)[1] >> 2 == 0x2E if build is v4 else IPv6(bytes(got)).tc >> 2 == 0x2E
    if build is v4:
        again = bytearray(got)
        set_ipv4_header_checksum(again)
        assert bytes(again) == bytes(got)  # the incremental checksum is the full one
        rebuilt = IP(bytes(got))
        del rebuilt.chksum  # scapy computes it again
        assert bytes(rebuilt) == bytes(got)


@pytest.mark.parametrize("ecn", [NOT_ECT, ECT_1, ECT_0, CE])
def test_encapsulation_copies_the_field(ecn: int) -> None:
    assert encapsulate_ecn(v4(ecn)) == ecn and encapsulate_ecn(v6(ecn)) == ecn


def test_mark_ce() -> None:
    for build in (v4, v6):
        assert mark_ce(build(NOT_ECT)) is None  # cannot be marked: the caller drops it
        ce = build(CE)
        assert mark_ce(ce) is ce
        for ecn in (ECT_0, ECT_1):
            marked = mark_ce(build(ecn))
            assert marked is not None and bytes(marked) == build(CE)  # scapy built it whole


@pytest.mark.parametrize("tos", [0x00, 0x01, 0xFE, 0xFF, 0x5A])
@pytest.mark.parametrize("ident", [0, 0xFFFF, 0x1234, 0xFEFF])
def test_ipv4_checksum_update_matches_a_full_recomputation(tos: int, ident: int) -> None:
    packet = bytes(IP(src="255.255.255.254", dst="0.0.0.1", tos=tos, id=ident, ttl=255))
    for ecn in (NOT_ECT, ECT_1, ECT_0, CE):
        got = with_ecn(packet, ecn)
        full = bytearray(got)
        set_ipv4_header_checksum(full)
        assert bytes(full) == bytes(got), (tos, ident, ecn)
        assert IP(bytes(got)).tos == (tos & 0xFC) | ecn


def test_ipv6_keeps_flow_label_and_dscp() -> None:
    got = with_ecn(v6(ECT_0), CE)
    parsed = IPv6(bytes(got))
    assert parsed.tc == (0x2E << 2) | CE and parsed.fl == 0xABCDE


def test_not_ip_is_unchanged_and_cannot_be_marked() -> None:
    for junk in (b"", b"\x45" * 19, b"\x60" * 39, b"\x44" + bytes(30), b"\x00" * 60):
        assert ecn_of(junk) is None
        assert decapsulate(CE, junk) is junk and mark_ce(junk) is None
        assert encapsulate_ecn(junk) == NOT_ECT


@given(st.binary(max_size=80), st.integers(0, 255))
def test_random_bytes_never_raise(data: bytes, outer: int) -> None:
    got = decapsulate(outer, data)
    assert got is None or got is data or len(got) == len(data)
    marked = mark_ce(data)
    assert marked is None or marked is data or len(marked) == len(data)
    assert encapsulate_ecn(data) in (NOT_ECT, ECT_1, ECT_0, CE)
