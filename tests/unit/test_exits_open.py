"""Open admission (node/core/open_admission.py and the link's `stranger` hook): a native
initiation from an unknown key makes a peer when the hook allows it, WireGuard mode never
does, the derived addresses are stable and inside their pools, and a flood of random
keys is capped, counted and cannot grow state past the cap."""

from ipaddress import IPv4Address

from tidewire.node.core import open_admission
from tidewire.node.core.capacity import live
from tidewire.node.core.open_admission import POOL4, POOL6, OpenAdmission, client_addresses
from tidewire.protocol.link.device import Device
from tidewire.protocol.link.peer import Peer, PeerConfig
from tidewire.protocol.link.profile import Mode

from .helpers import keypair
from .sim import Node, Sim


def make_open(dev: Device, cap: int) -> OpenAdmission:
    """The provider's side of open admission, as node/exits_open.py wires it."""
    core = OpenAdmission(
        live=lambda k, now: k in dev.peers and live(dev.peers[k], now=now),
        confirmed=lambda k: k in dev.peers and dev.peers[k].current is not None,
        cap=cap,
    )

    def stranger(key: bytes, now: float) -> Peer | None:
        ok, evict = core.decide(key, now=now)
        if not ok:
            return None
        if evict is not None:
            dev.remove_peer(evict)
            core.forgotten(evict)
        core.admitted(key, now=now)
        return dev.add_peer(PeerConfig(public_key=key, mode=Mode.NATIVE))

    dev.stranger = stranger
    return core


def open_pair(mode: Mode, cap: int = 4) -> tuple[Sim, Node, Node, OpenAdmission]:
    """alice knows bob; bob has no peer for alice but admits strangers."""
    sim = Sim()
    a = sim.node("alice", ("192.0.2.1", 51820))
    b = sim.node("bob", ("198.51.100.2", 51820))
    a.device.add_peer(PeerConfig(public_key=b.device.public_key, endpoint=b.addr, mode=mode))
    return sim, a, b, make_open(b.device, cap)


def test_a_native_stranger_is_admitted_and_data_flows() -> None:
    sim, a, b, core = open_pair(Mode.NATIVE)
    sim.send(a, b, b"\x45" + bytes(63))
    sim.run_until(1.0)
    assert a.device.public_key in b.device.peers
    assert [p for _, p in b.received] == [b"\x45" + bytes(63)]
    assert core.counters["admitted"] == 1


def test_without_the_hook_a_stranger_is_refused() -> None:
    sim, a, b, _ = open_pair(Mode.NATIVE)
    b.device.stranger = None
    sim.send(a, b, b"\x45" + bytes(63))
    sim.run_until(1.0)
    assert a.device.public_key not in b.device.peers
    assert b.device.drops["initiation_unknown_peer"] >= 1


def test_wireguard_mode_stays_closed() -> None:
    sim, a, b, core = open_pair(Mode.WIREGUARD)
    sim.send(a, b, b"\x45" + bytes(63))
    sim.run_until(1.0)
    assert a.device.public_key not in b.device.peers and not core.counters["admitted"]
    assert b.device.drops["initiation_unknown_peer"] >= 1


def test_a_flood_of_random_keys_is_capped_and_counted() -> None:
    sim = Sim()
    b = sim.node("bob", ("198.51.100.2", 51820))
    cap = 4
    dev = b.device
    core = make_open(dev, cap)
    attackers = []
    for i in range(40):  # each a real initiation from a fresh key, none followed by data
        node = sim.node(f"flood{i}", ("203.0.113.9", 1000 + i))
        node.device.add_peer(
            PeerConfig(public_key=dev.public_key, endpoint=b.addr, mode=Mode.NATIVE)
        )
        node.device.initiate(node.peer(b), now=sim.now)
        sim.flush(node)
        del sim.nodes[node.addr]  # gone: no response reaches it, it never retries
        attackers.append(node)
        sim.run_until(sim.now + 0.1)
    assert len(dev.peers) <= cap and len(core.dynamic) <= cap
    assert core.counters["refused_full"] > 0
    assert dev.drops["initiation_stranger_refused"] == core.counters["refused_full"]
    # half-open places go to newcomers once they are EVICT_HALF_OPEN old
    sim.run_until(sim.now + open_admission.EVICT_HALF_OPEN + 1)
    late = sim.node("late", ("203.0.113.10", 999))
    late.device.add_peer(
        PeerConfig(public_key=dev.public_key, endpoint=b.addr, mode=Mode.NATIVE)
    )
    sim.send(late, b, b"\x45" + bytes(63))
    sim.run_until(sim.now + 1.0)
    assert late.device.public_key in dev.peers and core.counters["evicted"] >= 1
    assert len(dev.peers) <= cap


def test_idle_dynamic_peers_are_swept() -> None:
    alive = {b"k" * 32: True}
    core = OpenAdmission(live=lambda k, now: alive[k], confirmed=lambda k: True)
    core.admitted(b"k" * 32, now=0.0)
    assert core.get_timer() == open_admission.SWEEP
    assert core.sweep(now=5.0) == []
    alive[b"k" * 32] = False
    assert core.sweep(now=10.0) == []  # idle from here
    assert core.sweep(now=10.0 + open_admission.IDLE) == [b"k" * 32]
    assert core.counters["forgotten_idle"] == 1


def test_a_clashing_address_is_refused() -> None:
    core = OpenAdmission(live=lambda k, now: True, confirmed=lambda k: True)
    a = b"a" * 32
    core.admitted(a, now=0.0)
    core.by_address[client_addresses(b"b" * 32)[0]] = a  # as if b derived a's address
    assert core.decide(b"b" * 32, now=1.0) == (False, None)
    assert core.counters["refused_address_taken"] == 1
    assert core.decide(a, now=1.0) == (True, None)  # its own again: a rekey


def test_derived_addresses_are_stable_and_in_their_pools() -> None:
    _, key = keypair("client")
    v4, v6 = client_addresses(key)
    assert (v4, v6) == client_addresses(key)
    assert v4 in POOL4 and v6 in POOL6
    assert v4 not in (POOL4.network_address, POOL4.broadcast_address)
    assert client_addresses(keypair("other")[1])[0] != v4
    assert isinstance(v4, IPv4Address)
