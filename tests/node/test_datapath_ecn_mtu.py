"""The data path's ECN (RFC 6040) and MTU handling, with real link crypto and a recording
transport: the inner ECN field goes to the transport for the outer header, an outer CE or
ECT(1) is applied on the way in (and an inner Not-ECT under CE dropped), TCP SYNs have
their MSS clamped in both directions, and a packet larger than the path carries gets an
ICMP "too big" into the TUN, rate-limited."""

import socket

import pytest
from scapy.layers.inet import ICMP, IP, TCP
from scapy.layers.inet6 import ICMPv6PacketTooBig, IPv6

from tidewire.node.core.ecn import CE, ECT_0, ECT_1, NOT_ECT
from tidewire.node.core.mtu import ERRORS_BURST, PathMtu
from tidewire.protocol.types import UDP, Path

from .test_datapath import A_ADDR, B_ADDR, Pair, deliver, pair, tun_packets

__all__ = ["pair"]  # the fixture, imported for the tests here

ROUTER4 = socket.inet_aton("10.0.0.254")


def tcp4(*, ecn: int = NOT_ECT, flags: str = "A", mss: int | None = None, size: int = 0) -> bytes:
    options = [("MSS", mss)] if mss is not None else []
    segment = IP(src="10.0.0.1", dst="10.0.0.1", tos=ecn, flags="DF") / TCP(
        sport=40000, dport=443, flags=flags, options=options
    )
    return bytes(segment / (b"x" * size))


def opened(p: Pair) -> list[bytes]:
    """What b sent to a, opened by a's link (WireGuard's padding cut off by IP length)."""
    out = []
    for data, _ in p.wire.added:
        res = p.a.receive_datagram(data, Path(UDP, B_ADDR), now=1.0)
        assert res is not None
        inner = res[1]
        out.append(inner[: (inner[2] << 8) | inner[3]])
    return out


def mss_of(packet: bytes) -> int:
    return dict(IP(packet)[TCP].options)["MSS"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("ecn", [NOT_ECT, ECT_1, ECT_0, CE])
def test_the_inner_ecn_field_goes_to_the_transport(pair: Pair, ecn: int) -> None:
    pair.dp.outbound(tcp4(ecn=ecn), now=1.0)
    assert pair.wire.codepoints == [ecn]


def test_an_ipv6_inner_traffic_class_goes_to_the_transport(pair: Pair) -> None:
    from ipaddress import ip_network

    pair.dp.routes.insert(ip_network("fd00::1/128"), pair.pb)
    packet = bytes(IPv6(src="fd00::2", dst="fd00::1", tc=0xB8 | ECT_0) / TCP())  # EF + ECT(0)
    pair.dp.outbound(packet, now=1.0)
    assert pair.wire.codepoints == [ECT_0]


def test_an_outer_ce_marks_an_ect_inner_packet(pair: Pair) -> None:
    sealed = pair.a.encrypt(pair.pa, tcp4(ecn=ECT_0, size=100), now=1.0)
    assert sealed is not None
    assert pair.dp.receive(sealed, Path(UDP, A_ADDR), now=1.0, ecn=CE)
    [got] = tun_packets(pair)
    assert got[1] & 3 == CE
    again = IP(got)
    del again.chksum  # scapy recomputes the header checksum: the update was right
    assert bytes(again) == got
    assert pair.dp.counters["ecn_outer_applied"] == 1


def test_an_outer_ce_on_a_not_ect_packet_drops_it(pair: Pair) -> None:
    sealed = pair.a.encrypt(pair.pa, tcp4(ecn=NOT_ECT), now=1.0)
    assert sealed is not None
    pair.dp.receive(sealed, Path(UDP, A_ADDR), now=1.0, ecn=CE)
    assert tun_packets(pair) == []
    assert pair.dp.drops["ecn_ce_not_ect"] == 1


@pytest.mark.parametrize(
    ("outer", "inner", "out"),
    [(ECT_0, ECT_0, ECT_0), (ECT_1, ECT_0, ECT_1), (NOT_ECT, ECT_1, ECT_1), (ECT_0, CE, CE)],
)
def test_other_outer_fields_follow_rfc_6040(pair: Pair, outer: int, inner: int, out: int) -> None:
    sealed = pair.a.encrypt(pair.pa, tcp4(ecn=inner), now=1.0)
    assert sealed is not None
    pair.dp.receive(sealed, Path(UDP, A_ADDR), now=1.0, ecn=outer)
    [got] = tun_packets(pair)
    assert got[1] & 3 == out


def test_an_outbound_syn_is_clamped_to_what_the_path_carries(pair: Pair) -> None:
    pair.dp.outbound(tcp4(flags="S", mss=1460), now=1.0)
    pair.dp.outbound(tcp4(flags="S", mss=1200), now=1.0)  # already small enough
    big, small = opened(pair)
    assert mss_of(big) == 1420 - 40 and mss_of(small) == 1200
    again = IP(big)
    del again[TCP].chksum
    assert bytes(again) == big  # the TCP checksum was updated
    assert pair.dp.counters["mss_clamped"] == 1


def test_an_inbound_syn_ack_is_clamped_too(pair: Pair) -> None:
    assert deliver(pair, tcp4(flags="SA", mss=8960))
    [got] = tun_packets(pair)
    assert mss_of(got) == 1380


def test_a_packet_the_path_cannot_carry_gets_fragmentation_needed(pair: Pair) -> None:
    dp = pair.dp
    dp.mtu = PathMtu(mtu=1420, overheads={UDP: 120}, router4=ROUTER4, counters=dp.counters)
    dp.outbound(tcp4(size=1300), now=1.0)  # 1340 bytes > 1300
    dp.outbound(tcp4(size=1200), now=1.0)  # fits
    dp.flush_tun()
    assert len(pair.wire.added) == 1 and dp.drops["too_big"] == 1
    [answer] = tun_packets(pair)
    icmp = IP(answer)
    assert icmp.src == "10.0.0.254" and icmp.dst == "10.0.0.1"
    assert (icmp[ICMP].type, icmp[ICMP].code, icmp[ICMP].nexthopmtu) == (3, 4, 1300)


def test_an_ipv6_packet_too_large_gets_packet_too_big(pair: Pair) -> None:
    from ipaddress import ip_network

    dp = pair.dp
    dp.routes.insert(ip_network("fd00::1/128"), pair.pb)
    dp.mtu = PathMtu(mtu=1420, overheads={UDP: 100}, router6=socket.inet_pton(10, "fd00::fe"))
    dp.outbound(bytes(IPv6(src="fd00::2", dst="fd00::1") / TCP() / (b"x" * 1340)), now=1.0)
    [answer] = tun_packets(pair)
    assert IPv6(answer)[ICMPv6PacketTooBig].mtu == 1320


def test_too_big_answers_are_rate_limited(pair: Pair) -> None:
    dp = pair.dp
    dp.mtu = PathMtu(mtu=1420, overheads={UDP: 120}, router4=ROUTER4, counters=dp.counters)
    for _ in range(ERRORS_BURST + 30):
        dp.outbound(tcp4(size=1300), now=1.0)
    dp.outbound(tcp4(size=1300), now=1.0 + 10 / dp.mtu.rate)  # ten more tokens later
    for _ in range(20):
        dp.outbound(tcp4(size=1300), now=1.0 + 10 / dp.mtu.rate)
    dp.flush_tun()
    assert len(tun_packets(pair)) == ERRORS_BURST + 10
    assert dp.counters["icmp_too_big_limited"] == 30 + 11
    assert dp.drops["too_big"] == ERRORS_BURST + 51
