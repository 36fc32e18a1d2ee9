"""The device's timer heap answers exactly what a scan of every peer would.

`Device.get_timer` keeps peers in a heap with lazy deletion instead of scanning all
of them per batch (issue 5: 1,000 peers). These tests drive several nodes through
random traffic, silences, timer firings and peer removals in virtual time, and
after every step compare the heap's answer with the brute-force minimum.
"""

from hypothesis import given, settings
from hypothesis import strategies as st

from tidewire.protocol.link.peer import PeerConfig

from .sim import Node, Sim

PACKET = bytes.fromhex("4500001c00004000400100000a0000010a000002") + bytes(8)


def brute_force(node: Node) -> float | None:
    deadlines = [d for p in node.device.peers.values() if (d := p.next_deadline()) is not None]
    return min(deadlines) if deadlines else None


def star(keepalive: int) -> tuple[Sim, Node, list[Node]]:
    sim = Sim(seed=1)
    hub = sim.node("hub", ("192.0.2.1", 51820))
    spokes = [sim.node(f"spoke{i}", (f"198.51.100.{i + 1}", 51820)) for i in range(4)]
    for spoke in spokes:
        sim.connect(spoke, hub, keepalive=keepalive if spoke is spokes[0] else 0)
    return sim, hub, spokes


def check(sim: Sim) -> None:
    for node in sim.nodes.values():
        assert node.device.get_timer() == brute_force(node)


steps = st.lists(
    st.tuples(
        st.sampled_from(["send", "reply", "wait", "remove", "readd"]),
        st.integers(0, 3),
        st.floats(0.001, 200.0),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(steps=steps, keepalive=st.sampled_from([0, 25]))
def test_heap_matches_a_scan_of_every_peer(
    steps: list[tuple[str, int, float]], keepalive: int
) -> None:
    sim, hub, spokes = star(keepalive)
    check(sim)
    for action, i, dt in steps:
        spoke = spokes[i]
        if action == "send":
            sim.send(spoke, hub, PACKET)
        elif action == "reply" and spoke.device.public_key in hub.device.peers:
            sim.send(hub, spoke, PACKET)
        elif action == "wait":
            sim.run_until(sim.now + dt)
        elif action == "remove" and spoke.device.public_key in hub.device.peers:
            hub.device.remove_peer(spoke.device.public_key)
        elif action == "readd" and spoke.device.public_key not in hub.device.peers:
            hub.device.add_peer(PeerConfig(public_key=spoke.device.public_key))
        check(sim)


def test_handle_timer_fires_every_due_peer_once() -> None:
    sim, hub, spokes = star(0)
    for spoke in spokes:
        sim.send(spoke, hub, PACKET)  # each spoke starts a handshake: retransmit armed
    sim.run_until(0.5)
    for spoke in spokes:
        sim.send(hub, spoke, PACKET)  # data both ways: keepalive and new-handshake timers
    sim.run_until(1.0)
    check(sim)
    due = hub.device.get_timer()
    assert due is not None
    hub.device.handle_timer(now=due + 30.0)
    # after firing, nothing is due any more, and the heap still agrees with a scan
    after = hub.device.get_timer()
    assert after is None or after > due + 30.0
    assert after == brute_force(hub)


def test_an_earlier_deadline_behind_the_top_is_not_lost() -> None:
    """A peer queued far out (only its 540 s key erasure pending) gets a new-handshake
    deadline while another peer holds the heap's top; once the top fires, the new
    deadline is the next one due, and the sim really sends the handshake then."""
    sim, hub, spokes = star(0)
    quiet = spokes[1]
    for i, at in ((0, 0.0), (2, 0.25), (1, 0.5)):  # the quiet spoke's keys erased last
        sim.run_until(at)
        sim.send(spokes[i], hub, PACKET)
    sim.run_until(12.0)  # the hub's owed keepalives went out; only key erasure is left
    assert hub.peer(quiet).next_deadline() == hub.peer(quiet).zero_keys
    sim.send(spokes[0], hub, PACKET)  # the hub owes spoke 0 a keepalive at 22 s
    sim.drop_rules.append(lambda s: s.src == quiet.addr)  # spoke 1 falls silent
    sim.run_until(13.0)
    sim.send(hub, quiet, PACKET)  # unanswered data: a new handshake due at 28 s
    check(sim)
    sim.run_until(23.0)  # the keepalive to spoke 0 fired
    check(sim)
    assert hub.device.get_timer() == 13.0 + 15.0
    sim.run_until(28.5)
    assert any(s.src == hub.addr and s.dst == quiet.addr and s.kind == 1 for s in sim.log[-5:])
