"""FQ-CoDel of node/core/queues/fq_codel.py (RFC 8290) and ECN marking (ecn.py, RFC 3168):
classification from the inner header, new-flow priority, CE instead of drop for ECT
packets with the IPv4 checksum still valid, the byte limit taken from the fattest flow."""

import struct

from tidewire.node.core.ecn import mark_ce
from tidewire.node.core.queues.fq_codel import FLOWS, FqCoDel

from .queue_sim import ipv4, ipv6

SEED = 7


def header_sum_ok(packet: bytes) -> bool:
    """RFC 1071: the 16-bit words of a valid IPv4 header, checksum included, sum to 0xFFFF."""
    ihl = (packet[0] & 15) * 4
    total = sum(struct.unpack(f"!{ihl // 2}H", packet[:ihl]))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return bool(total == 0xFFFF)


def fq(**kwargs: object) -> FqCoDel[bytes]:
    return FqCoDel(seed=SEED, **kwargs)  # type: ignore[arg-type]


def test_classification_by_the_inner_5_tuple() -> None:
    q = fq()
    a = q.classify(ipv4(sport=1000))
    assert q.classify(ipv4(sport=1000, size=60)) == a  # same flow, another size
    assert q.classify(ipv4(sport=1001)) != a
    assert q.classify(ipv4(sport=1000, proto=6)) != a
    assert q.classify(ipv6(sport=1000)) != q.classify(ipv6(sport=1001))
    # the fragments of one datagram stay together; ICMP hashes by addresses
    assert q.classify(ipv4(frag=0x2000)) == q.classify(ipv4(frag=185))
    assert q.classify(ipv4(proto=1, sport=1)) == q.classify(ipv4(proto=1, sport=2))
    # not IPv4 or IPv6: the fallback queue, apart from the hashed ones
    for junk in (b"", b"\x45", bytes(19), b"\x00" * 40, b"\x75" + bytes(60), b"\x60" + bytes(30)):
        assert q.classify(junk) == FLOWS
    # the seed perturbs the hash
    other = FqCoDel[bytes](seed=SEED + 1)
    flows = [ipv4(sport=p) for p in range(50)]
    assert [q.classify(p) for p in flows] != [other.classify(p) for p in flows]


def test_a_new_flow_is_served_before_old_ones() -> None:
    q = fq()
    bulk = ipv4(sport=1)
    for _ in range(100):
        q.enqueue(bulk, bulk, 1500, 0.0)
    for _ in range(3):
        assert q.dequeue(0.001) is not None  # the bulk flow is now old
    sparse = ipv4(sport=2, size=100)
    q.enqueue(sparse, sparse, 100, 0.002)
    entry = q.dequeue(0.003)
    assert entry is not None and entry[2] == sparse


def overload(q: FqCoDel[bytes], packet: bytes, *, stop: float = 2.0) -> list[bytes]:
    """1000 packets at once, then one dequeue per 1.2 ms: a standing queue for CoDel."""
    for _ in range(1000):
        q.enqueue(packet, packet, len(packet), 0.0)
    out = []
    t = 0.0
    while t < stop and (entry := q.dequeue(t)) is not None:
        out.append(entry[2])
        t += 0.0012
    return out


def test_ect_packets_are_marked_ce_with_a_valid_checksum_instead_of_dropped() -> None:
    for tos in (0x02, 0x01, 0xB8 | 0x02):  # ECT(0), ECT(1), ECT(0) with DSCP EF
        q = fq(mark=mark_ce)
        packet = ipv4(tos=tos)
        assert header_sum_ok(packet)
        out = overload(q, packet)
        assert q.marks > 0 and q.drops == 0
        marked = [p for p in out if p != packet]
        assert len(marked) == q.marks
        for p in marked:
            assert p[1] == tos | 3  # CE, the DSCP kept
            assert header_sum_ok(p)
            assert p[:1] + p[2:10] + p[12:] == packet[:1] + packet[2:10] + packet[12:]


def test_ipv6_ect_is_marked_in_the_traffic_class() -> None:
    q = fq(mark=mark_ce)
    packet = ipv6(tclass=0x01)
    out = overload(q, packet)
    assert q.marks > 0 and q.drops == 0
    marked = [p for p in out if p != packet]
    assert marked and all(p[1] >> 4 == 3 and p[2:] == packet[2:] for p in marked)


def test_not_ect_is_dropped_and_ecn_off_drops_ect() -> None:
    q = fq(mark=mark_ce)
    overload(q, ipv4(tos=0))
    assert q.drops > 0 and q.marks == 0
    q = fq()  # no mark function: ECN off
    overload(q, ipv4(tos=2))
    assert q.drops > 0 and q.marks == 0


def test_already_ce_counts_as_marked_and_is_left_alone() -> None:
    packet = ipv4(tos=3)
    assert mark_ce(packet) is packet
    assert mark_ce(ipv4(tos=0)) is None
    assert mark_ce(b"\x45" + bytes(10)) is None


def test_over_the_limit_the_fattest_flow_loses() -> None:
    q = fq(limit=30_000)
    fat = ipv4(sport=1)
    thin = ipv4(sport=2)
    for _ in range(5):
        q.enqueue(thin, thin, 1500, 0.0)
    for _ in range(1000):
        q.enqueue(fat, fat, 1500, 0.0)
        assert q.backlog <= 30_000
    assert q.drops == q.overlimit == 1005 - q.packets
    thin_left = sum(1 for flow in q.flows.values() for e in flow.packets if e[2] == thin)
    assert thin_left == 5
