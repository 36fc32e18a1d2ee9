"""Babel route exchange (node/core/routing/babel.py) in small scenarios, in virtual time.

The scenarios follow RFC 8966's own reasoning: a line where routes add up, a
triangle where a cheaper path appears (taken only after smoothing: hysteresis), and
a broken link that leaves the only alternative unfeasible, so that recovery needs a
seqno request to the origin, never a loop. Each test checks every FIB change for
forwarding loops.
"""

from tidewire.node.core.routing.announce import Install, Send
from tidewire.node.core.routing.babel import Babel, Params
from tidewire.node.core.routing.metric import INFINITY
from tidewire.protocol.control import routes as wire

from .babel_sim import Net, key

A, B, C, D = 0, 1, 2, 3


def no_loop(net: Net) -> None:
    loop = net.forwarding_loop()
    assert loop is None, f"forwarding loop {loop}"


def cost(net: Net, a: int, b: int) -> int:
    return net.measured_cost(key(a), key(b))


def test_line_routes_add_up_and_go_through_the_middle() -> None:
    net = Net(3)
    net.connect(A, B, 0.010)
    net.connect(B, C, 0.030)
    net.run(120, no_loop)
    assert net.fib[key(A)][key(C)] == key(B)
    assert net.fib[key(C)][key(A)] == key(B)
    assert net.metric(key(A), key(C)) == cost(net, A, B) + cost(net, B, C)
    # the RTT made the slower link dearer (RFC 9616's cost between rtt-min and rtt-max)
    assert cost(net, A, B) < cost(net, B, C)
    assert net.nodes[key(A)].destinations[key(C)].selected.router_id == key(C)  # type: ignore[union-attr]


def test_triangle_takes_a_cheaper_path_only_once_it_is_better_smoothed() -> None:
    net = Net(3)
    net.connect(A, C, 0.200)  # a slow direct link
    net.run(60, no_loop)
    assert net.fib[key(A)][key(C)] == key(C)
    net.connect(A, B, 0.005)
    net.connect(B, C, 0.005)
    net.run(63, no_loop)
    # B's route is cheaper already but has no smoothed history: A keeps the direct one
    via_b = net.nodes[key(A)].destinations[key(C)].routes[key(B)].metric
    assert via_b < net.metric(key(A), key(C))
    assert net.fib[key(A)][key(C)] == key(C)
    net.run(150, no_loop)
    assert net.fib[key(A)][key(C)] == key(B)
    assert net.metric(key(A), key(C)) == cost(net, A, B) + cost(net, B, C)


def test_broken_link_recovers_through_a_seqno_request_without_a_loop() -> None:
    # A-B-C is cheap; A-D-C is dear: when B-C breaks, D's route is unfeasible for A
    net = Net(4)
    net.connect(A, B, 0.005)
    net.connect(B, C, 0.005)
    net.connect(A, D, 0.100)
    net.connect(D, C, 0.100)
    net.run(120, no_loop)
    assert net.fib[key(A)][key(C)] == key(B)
    seqno_before = net.nodes[key(C)].seqno
    a = net.nodes[key(A)]
    d_route = a.destinations[key(C)].routes[key(D)]
    assert not a.sources.feasible(key(C), key(C), d_route.seqno, d_route.refmetric)

    net.link(B, C).up = False
    net.run(200, no_loop)
    assert net.nodes[key(C)].seqno != seqno_before  # the origin answered a seqno request
    assert net.fib[key(A)][key(C)] == key(D)
    assert net.fib[key(B)][key(C)] == key(A)
    # within the band of metric moves that wait for a periodic update (less than a hop)
    assert abs(net.metric(key(B), key(C)) - net.shortest(key(C))[key(B)]) < Params().trigger_delta

    net.link(B, C).up = True
    net.run(400, no_loop)
    assert net.fib[key(A)][key(C)] == key(B)


def test_retraction_when_the_only_route_goes() -> None:
    net = Net(3)
    net.connect(A, B, 0.005)
    net.connect(B, C, 0.005)
    net.run(60, no_loop)
    net.link(B, C).up = False
    net.run(120, no_loop)
    assert key(C) not in net.fib[key(A)] and key(C) not in net.fib[key(B)]
    assert net.metric(key(A), key(C)) == INFINITY


def _engine(*, max_destinations: int = 4096, max_sources: int = 8192) -> Babel:
    params = Params(max_destinations=max_destinations, max_sources=max_sources)
    return Babel(router_id=key(0), rng=lambda n: bytes(n), now=0.0, params=params)


def test_start_sends_hello_ihu_and_a_wildcard_route_request() -> None:
    b = _engine()
    b.add_neighbour(key(1), now=0.0)
    msgs = [a.message for a in b.take_actions() if isinstance(a, Send)]
    assert [type(m) for m in msgs] == [wire.RouteHello, wire.Ihu, wire.RouteRequest]
    assert msgs[2] == wire.RouteRequest(None)


def test_updates_only_from_neighbours() -> None:
    b = _engine()
    b.add_neighbour(key(1), now=0.0)
    b.take_actions()
    entry = wire.UpdateEntry(key(5), 1, 100, key(5))
    b.receive(key(2), wire.Update(1600, (entry,)), now=1.0)
    assert b.counters["route_not_neighbour"] == 1
    assert key(5) not in b.destinations


def _hear(b: Babel, neighbour: bytes, *, now: float) -> None:
    """Make `neighbour` a working link of `b`: a hello and an IHU."""
    b.receive(neighbour, wire.RouteHello(1, 400, 0), now=now)
    b.receive(neighbour, wire.Ihu(256, 400), now=now)


def test_a_flood_of_destinations_stays_within_the_cap() -> None:
    b = _engine(max_destinations=50, max_sources=60)
    b.add_neighbour(key(1), now=0.0)
    b.add_neighbour(key(2), now=0.0)
    _hear(b, key(1), now=0.0)
    _hear(b, key(2), now=0.0)
    for i in range(100, 2100, 5):
        entries = tuple(wire.UpdateEntry(key(j), 1, 256, key(j)) for j in range(i, i + 5))
        b.receive(key(1), wire.Update(1600, entries), now=1.0)
        b.take_actions()
    assert len(b.destinations) <= 50
    assert len(b.sources) <= 60
    assert b.counters["route_destinations_evicted"] == 2000 - 50
    assert b.sources.counters["route_sources_full"] > 0  # what could not be recorded was not sent
    # a flood of updates: every message we sent afterwards stays a legal message
    b.handle_timer(now=20.0)
    for act in b.take_actions():
        if isinstance(act, Send) and isinstance(act.message, wire.Update):
            assert len(wire.encode_body(act.message)) <= wire.BODY_MAX


def test_own_key_and_router_id_are_never_learnt() -> None:
    b = _engine()
    b.add_neighbour(key(1), now=0.0)
    _hear(b, key(1), now=0.0)
    b.receive(key(1), wire.Update(1600, (wire.UpdateEntry(key(0), 9, 0, key(0)),)), now=1.0)
    b.receive(key(1), wire.Update(1600, (wire.UpdateEntry(key(7), 9, 0, key(0)),)), now=1.0)
    assert b.counters["route_own"] == 2 and not b.destinations


def test_seqno_request_for_us_bumps_our_seqno_once() -> None:
    b = _engine()
    b.add_neighbour(key(1), now=0.0)
    _hear(b, key(1), now=0.0)
    b.take_actions()
    start = b.seqno
    b.receive(key(1), wire.SeqnoRequest((start + 1) % 65536, 5, key(0), key(0)), now=1.0)
    assert b.seqno == (start + 1) % 65536
    updates = [a.message for a in b.take_actions() if isinstance(a, Send)]
    assert wire.Update(1600, (wire.UpdateEntry(key(0), b.seqno, 0, key(0)),)) in updates
    b.receive(key(1), wire.SeqnoRequest(start, 5, key(0), key(0)), now=1.0)  # old: no bump
    assert b.seqno == (start + 1) % 65536


def _two_neighbours(*, via: int) -> Babel:
    """An engine with working links to key(1) and key(2) that heard of key(9) from `via`."""
    b = _engine()
    for k in (1, 2):
        b.add_neighbour(key(k), now=0.0)
        _hear(b, key(k), now=0.0)
    b.receive(key(via), wire.Update(1600, (wire.UpdateEntry(key(9), 4, 256, key(9)),)), now=1.0)
    return b


def test_seqno_request_is_forwarded_with_one_hop_less_and_not_twice() -> None:
    b = _two_neighbours(via=2)
    assert any(isinstance(a, Install) for a in b.take_actions())
    req = wire.SeqnoRequest(5, 3, key(9), key(9))
    b.receive(key(1), req, now=2.0)
    sent = [a for a in b.take_actions() if isinstance(a, Send)]
    assert sent == [Send(key(2), wire.SeqnoRequest(5, 2, key(9), key(9)))]
    b.receive(key(1), req, now=2.5)
    assert not [a for a in b.take_actions() if isinstance(a, Send)]
    assert b.requests.counters["route_request_duplicate"] == 1


def test_a_lost_route_is_retracted_and_its_seqno_asked_for_from_every_neighbour() -> None:
    b = _two_neighbours(via=1)
    sent = [a for a in b.take_actions() if isinstance(a, Send)]
    # advertised to 2 (finite, so it is now our FD) and to 1 as infinity (poison reverse)
    assert Send(key(2), wire.Update(1600, (wire.UpdateEntry(key(9), 4, 512, key(9)),))) in sent
    assert Send(key(1), wire.Update(1600, (wire.UpdateEntry(key(9), 4, INFINITY, key(9)),))) in sent
    b.receive(key(1), wire.Update(1600, (wire.UpdateEntry(key(9), 4, INFINITY, key(9)),)), now=2.0)
    msgs = [a.message for a in b.take_actions() if isinstance(a, Send)]
    retraction = wire.Update(1600, (wire.UpdateEntry(key(9), 4, INFINITY, key(9)),))
    request = wire.SeqnoRequest(5, 64, key(9), key(9))
    assert msgs.count(retraction) == 2 and msgs.count(request) == 2
    # the FD stays: the same seqno with a worse metric is not feasible
    b.receive(key(2), wire.Update(1600, (wire.UpdateEntry(key(9), 4, 600, key(9)),)), now=3.0)
    assert b.destinations[key(9)].selected is None


def test_a_stub_announces_itself_but_carries_no_route() -> None:
    # A - B - C and A - D - C; B is a stub (a node that does not relay): even though the
    # way through B is cheaper, A and C reach each other through D, and still reach B
    net = Net(4)
    net.nodes[key(B)].transit = False
    net.connect(A, B, 0.005)
    net.connect(B, C, 0.005)
    net.connect(A, D, 0.100)
    net.connect(D, C, 0.100)
    net.run(120, no_loop)
    assert net.fib[key(A)][key(C)] == key(D) and net.fib[key(C)][key(A)] == key(D)
    assert net.fib[key(A)][key(B)] == key(B) and net.fib[key(D)][key(B)] in (key(A), key(C))
    assert net.fib[key(B)][key(C)] == key(C)  # a stub still learns routes for itself
