"""Link cost, feasibility and seqno arithmetic of the route exchange.

Known answers: ETX = 256/(alpha*beta) and the rxcost from the hello history (RFC 8966
appendix A.2.2), the RTT from four timestamps and its linear cost (RFC 9616 sections
3.1 and 3.3), seqno comparison modulo 2^16 (RFC 8966 section 3.2.1); the feasibility
condition (section 3.5.1) against a brute-force model.
"""

from hypothesis import given
from hypothesis import strategies as st

from tidewire.node.core.routing.metric import (
    INFINITY,
    HelloHistory,
    Rtt,
    RttParams,
    link_cost,
    smooth,
)
from tidewire.node.core.routing.sources import GC_TIME, SourceTable, seqno_gt
from tidewire.node.core.routing.table import Destination, Route, select


def test_etx_of_a_lossless_and_a_lossy_link() -> None:
    assert link_cost(txcost=256, rxcost=256, rtt_cost=0) == 256
    assert link_cost(txcost=512, rxcost=512, rtt_cost=0) == 1024  # 50% each way: 4 tries
    assert link_cost(txcost=INFINITY, rxcost=256, rtt_cost=0) == INFINITY
    assert link_cost(txcost=256, rxcost=256, rtt_cost=100) == 356


def test_hello_history_counts_misses_and_jumps() -> None:
    h = HelloHistory()
    assert h.rxcost() == INFINITY
    h.heard(10)
    assert h.rxcost() == 256  # one of one
    h.heard(12)  # 11 was lost
    assert h.rxcost() == 256 * 3 // 2  # two of three
    h.missed()
    h.missed()
    h.missed()
    assert h.rxcost() == INFINITY  # nothing in the last three slots: the link is down
    h.heard(16)
    assert h.filled == 7 and bin(h.reach).count("1") == 3
    h.heard(5000)  # far away: the neighbour restarted
    assert h.filled == 1 and h.rxcost() == 256


def test_rtt_from_four_timestamps_and_its_cost() -> None:
    # t1 = 1 s, the neighbour holds the hello 3 ms, t4 = 1.053 s: RTT 50 ms
    r = Rtt(RttParams(rtt_min=0.010, rtt_max=0.110, max_penalty=100))
    assert r.sample(t1=1_000_000, t2=7_000, t3=10_000, now=1.053)
    # the first sample counts double (babeld)
    assert r.smoothed is not None and abs(r.smoothed - 0.100) < 1e-6
    assert r.cost(now=1.053) == 90
    for _ in range(200):
        r.sample(t1=1_000_000, t2=7_000, t3=10_000, now=1.053)
    assert r.smoothed is not None and abs(r.smoothed - 0.050) < 1e-4
    assert r.cost(now=1.1) == 40  # 100 * (50 - 10) / (110 - 10)
    assert not r.sample(t1=1_000_000, t2=0, t3=60_000, now=1.053)  # held longer than the RTT


def test_a_hello_echoed_after_a_handshake_wait_is_no_round_trip() -> None:
    p = RttParams(rtt_min=0.010, rtt_max=0.400, max_penalty=1024)
    r = Rtt(p)
    # the hello left at 1 s but waited 5.2 s for the link's handshake: refused
    assert not r.sample(t1=1_000_000, t2=7_000, t3=10_000, now=6.2)
    assert r.smoothed is None and r.cost(now=6.2) == 0
    # a 1.5 s one counts as rtt_max: doubled as the first, 0.8 s, not 3 s
    assert r.sample(t1=1_000_000, t2=7_000, t3=10_000, now=2.5)
    assert r.smoothed == 2 * p.rtt_max
    for _ in range(30):  # then 10 ms samples every hello: the cost is gone within minutes
        r.sample(t1=1_000_000, t2=7_000, t3=10_000, now=1.013)
    assert r.cost(now=1.013) < 50


def test_smoothing_halves_the_gap_each_half_life() -> None:
    assert smooth(1000.0, 0.0, 200, now=4.0, half_life=4.0) == 600.0
    assert smooth(1000.0, 0.0, 200, now=100.0, half_life=4.0) == 200.0  # snaps when close
    assert smooth(1000.0, 0.0, INFINITY, now=1.0, half_life=4.0) == INFINITY


@given(a=st.integers(0, 0xFFFF), d=st.integers(1, 0x7FFF))
def test_seqno_order_wraps(a: int, d: int) -> None:
    b = (a + d) % 65536
    assert seqno_gt(b, a) and not seqno_gt(a, b) and not seqno_gt(a, a)


def _model_feasible(ads: list[tuple[int, int]], seqno: int, metric: int) -> bool:
    """Brute force: feasible iff a retraction, or strictly better than every finite
    advertisement we made, where "better" is a newer seqno or the same and smaller."""
    if metric >= INFINITY:
        return True
    finite = [(s, m) for s, m in ads if m < INFINITY]
    if not finite:
        return True
    # the FD is the best of them under the (seqno newer, metric smaller) order
    best = finite[0]
    for s, m in finite[1:]:
        if seqno_gt(s, best[0]) or (s == best[0] and m < best[1]):
            best = (s, m)
    return seqno_gt(seqno, best[0]) or (seqno == best[0] and metric < best[1])


small_seqno = st.integers(0, 6).map(lambda x: (65533 + x) % 65536)  # around the wrap
metric = st.sampled_from([0, 100, 256, 300, 1000, INFINITY])


@given(
    ads=st.lists(st.tuples(small_seqno, metric), max_size=8), probe=st.tuples(small_seqno, metric)
)
def test_feasibility_matches_the_brute_force_model(
    ads: list[tuple[int, int]], probe: tuple[int, int]
) -> None:
    t = SourceTable(cap=4)
    p = bytes(32)
    for s, m in ads:
        assert t.advertised(p, p, s, m, now=1.0)
    assert t.feasible(p, p, *probe) == _model_feasible(ads, *probe)


def test_source_table_is_bounded_and_never_forgets_a_fresh_fd() -> None:
    t = SourceTable(cap=2)
    a, b, c = (bytes([i]) * 32 for i in (1, 2, 3))
    assert t.advertised(a, a, 1, 10, now=0.0)
    assert t.advertised(b, b, 1, 10, now=1.0)
    assert not t.advertised(c, c, 1, 10, now=2.0)  # both too recent to forget
    assert t.counters["route_sources_full"] == 1
    assert t.advertised(c, c, 1, 10, now=GC_TIME + 0.5)  # a is past GC_TIME: evicted
    assert t.get(a, a) is None and t.get(c, c) is not None
    assert t.counters["route_sources_evicted"] == 1


def _route(neighbour: int, metric: int, smoothed: float) -> Route:
    n = bytes([neighbour]) * 32
    return Route(n, bytes(32), 1, metric - 256, 256, 100.0, 56.0, smoothed, 0.0)


def test_selection_switches_only_when_better_now_and_smoothed() -> None:
    sources = SourceTable(cap=4)
    dest = Destination(bytes(32), 0.0)
    current, challenger = _route(1, 600, 600.0), _route(2, 650, 400.0)
    dest.routes = {current.neighbour: current, challenger.neighbour: challenger}
    dest.selected = current
    # better smoothed but worse now: stay (babeld's strong ordering)
    assert select(dest, sources, now=0.0, half_life=1e9) is current
    challenger.refmetric = 600 - 256 - 10  # now better both ways: switch
    assert select(dest, sources, now=0.0, half_life=1e9) is challenger
    dest.selected = None  # with nothing selected, the best smoothed is taken
    assert select(dest, sources, now=0.0, half_life=1e9) is challenger
