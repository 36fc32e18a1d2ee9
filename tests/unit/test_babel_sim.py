"""The route exchange on random topologies in virtual time (hypothesis).

A random connected graph of a few nodes with random link delays runs for a while,
then a random sequence of link failures, recoveries and delay changes happens. After
every event that changed any node's FIB, no destination may have a forwarding loop.
After the last event and a quiet time (QUIET, long enough for expiry, seqno requests,
smoothing and a few periodic updates), every node's metric to every destination is
within the trigger band of the shortest path over the link costs the nodes measure,
and unreachable destinations are unreachable.
"""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tidewire.node.core.routing.babel import Params
from tidewire.node.core.routing.metric import INFINITY

from .babel_sim import Net

QUIET = 300.0
Scenario = tuple[int, list[tuple[int, int, float]], list[tuple[float, str, int, float]]]
delays = st.sampled_from([0.002, 0.010, 0.030, 0.080, 0.150])


@st.composite
def scenarios(
    draw: st.DrawFn,
) -> tuple[int, list[tuple[int, int, float]], list[tuple[float, str, int, float]]]:
    n = draw(st.integers(3, 7))
    edges = {}
    for i in range(1, n):  # a random spanning tree, then extra edges
        edges[(draw(st.integers(0, i - 1)), i)] = draw(delays)
    for _ in range(draw(st.integers(0, n))):
        a, b = sorted(draw(st.lists(st.integers(0, n - 1), min_size=2, max_size=2, unique=True)))
        edges.setdefault((a, b), draw(delays))
    links = [(a, b, d) for (a, b), d in edges.items()]
    events = draw(
        st.lists(
            st.tuples(
                st.floats(1.0, 60.0),
                st.sampled_from(["down", "up", "delay"]),
                st.integers(0, len(links) - 1),
                delays,
            ),
            max_size=6,
        )
    )
    return n, links, events


def no_loop(net: Net) -> None:
    loop = net.forwarding_loop()
    assert loop is None, f"forwarding loop at t={net.now}: {loop}"


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios(), seed=st.integers(0, 2**16))
def test_no_loop_ever_and_shortest_paths_after_quiet(
    scenario: Scenario,
    seed: int,
) -> None:
    n, links, events = scenario
    net = Net(n, seed=seed)
    for a, b, d in links:
        net.connect(a, b, d)
    net.run(100.0, no_loop)
    for gap, kind, i, d in events:
        a, b, _ = links[i]
        net.run(net.now + gap, no_loop)
        link = net.link(a, b)
        if kind == "down":
            link.up = False
        elif kind == "up":
            link.up = True
        else:
            link.delay = d
    net.run(net.now + QUIET, no_loop)
    band = Params().trigger_delta
    for dest in net.keys:
        best = net.shortest(dest)
        for node in net.keys:
            if node == dest:
                continue
            got = net.metric(node, dest)
            if best[node] >= INFINITY:
                assert got >= INFINITY, "a route to an unreachable destination"
            else:
                assert abs(got - best[node]) < band, (got, best[node])
