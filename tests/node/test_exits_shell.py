"""The shell of exit choice and open admission, without root (node/exits.py,
node/exits_open.py): an admitted stranger is routed by its derived addresses and
held to max_clients; idle ones go; our record is re-signed for load at most once a
minute; a switch moves `routes` to the new exit in the cryptokey routes; a down
path makes an exit not answering."""

import ipaddress
import socket
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from tidewire.node import netconf
from tidewire.node.config.routing import RoutingSpec
from tidewire.node.core import relay
from tidewire.node.core.capacity import Admission
from tidewire.node.core.discovery import RecordCache
from tidewire.node.core.exits import Offer
from tidewire.node.core.open_admission import client_addresses
from tidewire.node.core.paths.candidate import Move
from tidewire.node.core.routing.table import Destination, Route
from tidewire.node.datapath import DataPath
from tidewire.node.exits import ExitClient
from tidewire.node.exits_open import PUBLISH_EVERY, OpenExit
from tidewire.node.peers import Peers
from tidewire.protocol.keys import encode_key
from tidewire.protocol.link.device import Device
from tidewire.protocol.link.peer import PeerConfig
from tidewire.protocol.types import RELAY, UDP, Path

from ..unit.helpers import keypair


@pytest.fixture
def peers() -> Iterator[Peers]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    dp = DataPath(
        device=Device(private_key=keypair("exit-shell")[0], rng=bytes),
        tun_fd=ours.fileno(),
        transports={},
        policy=None,
        persist_timestamp=lambda key, stamp: None,
    )
    yield Peers(name="twx", table=netconf.Routing.of("off", mark=0), datapath=dp, exit_enabled=True)
    ours.close()
    theirs.close()


def v4(addr: ipaddress.IPv4Address | str) -> int:
    return int(ipaddress.IPv4Address(addr))


def test_an_admitted_stranger_is_routed_by_its_derived_addresses(peers: Peers) -> None:
    opened = OpenExit(peers, max_clients=4)
    _, key = keypair("stranger")
    peer = opened.admit(key, 10.0)
    assert peer is not None and peers.datapath.device.peers[key] is peer
    addr4, _ = client_addresses(key)
    assert peers.datapath.routes.lookup_v4(v4(addr4)) is peer
    assert peers.specs[key].dynamic and key not in peers.configured()  # not configuration
    assert opened.counters()["dynamic"] == 1


def test_max_clients_refuses_and_leaves_nothing_behind(peers: Peers) -> None:
    dev = peers.datapath.device
    dev.admit = Admission(dev.peers.values(), max_clients=0).admit
    opened = OpenExit(peers, max_clients=1)
    _, key = keypair("stranger")
    assert opened.admit(key, 10.0) is None
    assert key not in dev.peers and not opened.core.dynamic
    assert opened.core.counters["refused_capacity"] == 1


def test_idle_strangers_are_forgotten_and_the_record_follows_the_load(peers: Peers) -> None:
    opened = OpenExit(peers, max_clients=4)
    signed: list[float] = []
    opened.on_load_change = lambda: signed.append(1.0)
    _, a = keypair("a")
    _, b = keypair("b")
    opened.admit(a, 100.0)
    assert len(signed) == 1  # the first change is published at once
    opened.admit(b, 101.0)
    assert len(signed) == 1 and opened.get_timer() is not None
    times = []
    while (due := opened.get_timer()) is not None and due < 1000.0:
        opened.handle_timer(now=due)
        times.append(due)
    assert a not in peers.datapath.device.peers and b not in peers.datapath.device.peers
    assert len(signed) == 2  # b's arrival and both departures: one re-signing, a minute on
    assert times[-1] == 100.0 + PUBLISH_EVERY


def test_a_switch_moves_the_routes_and_a_down_path_is_not_answering(peers: Peers) -> None:
    dp = peers.datapath
    spec = RoutingSpec(auto=True, routes=[ipaddress.ip_network("0.0.0.0/0")])
    client = ExitClient(spec, peers=peers, cache=RecordCache(), wall=lambda: 0.0)
    (_, old), (_, new) = keypair("p1"), keypair("p2")
    for key, port in ((old, 1), (new, 2)):
        peer = dp.device.add_peer(PeerConfig(public_key=key))
        dp.paths.add(peer, [Path(UDP, ("192.0.2.1", port))])
    dp.routes.insert("0.0.0.0/0", dp.device.peers[old])
    peers.allowed[old] = list(spec.routes)
    client._move(old, new)
    assert dp.routes.lookup_v4(v4("1.1.1.1")) is dp.device.peers[new]
    assert peers.allowed[old] == [] and peers.allowed[new] == list(spec.routes)
    assert client.measure(new, now=1.0) == (None, None)  # no session, not yet late
    dp.paths.sets[old].candidates[0].move(Move.FAIL)
    dp.paths.sets[old].active = dp.paths.sets[old].candidates[0]
    assert client.measure(old, now=1.0)[1] is False


def _routed(dest: bytes, via: dict[bytes, int], *, selected: bytes) -> Any:
    """A stand-in for the route exchange: `via` neighbour -> route metric to `dest`."""
    routes = {
        n: Route(n, dest, 1, m - 256, 256, expires=1e9, hold=60.0, smoothed=m, smoothed_time=0)
        for n, m in via.items()
    }
    table = Destination(dest, 0.0, routes=routes, selected=routes[selected])
    return SimpleNamespace(engine=SimpleNamespace(destinations={dest: table}))


def test_two_hops_gives_the_exit_session_relayed_paths_only(peers: Peers) -> None:
    dp = peers.datapath
    (_, exit_key), (_, r1), (_, r2), (_, far) = (keypair(n) for n in ("e", "r1", "r2", "far"))
    for n, port in ((r1, 1), (r2, 2)):  # two relay neighbours on direct paths
        dp.paths.add(dp.device.add_peer(PeerConfig(public_key=n)), [Path(UDP, ("192.0.2.1", port))])
    hidden = dp.device.add_peer(PeerConfig(public_key=far))  # reached through a relay only
    hidden.path = Path(RELAY, relay.address(r1, far))
    spec = RoutingSpec(auto=True, hops=2, routes=[ipaddress.ip_network("0.0.0.0/0")])
    routing = _routed(exit_key, {r1: 700, r2: 600, far: 300}, selected=r1)
    client = ExitClient(spec, peers=peers, cache=RecordCache(), wall=lambda: 0.0, routing=routing)
    client.core.set_offers([Offer(exit_key, endpoints=("udp://203.0.113.1:51820",))], now=0.0)
    relays, first = client.relays_to(exit_key, now=0.0)
    assert set(relays) == {r1, r2} and first == r1  # never `far`: no direct path to it
    client.core.routed_via(exit_key, relays, selected=first, now=0.0)
    # the exit's peer as _join leaves it with hops = 1: its endpoint, then a relay
    peer = dp.device.add_peer(PeerConfig(public_key=exit_key))
    direct = Path(UDP, ("203.0.113.1", 51820))
    dp.paths.add(peer, [direct, Path(RELAY, relay.address(r2, exit_key))])
    client.ours[exit_key] = 0.0
    client._reroute(exit_key)
    paths = [c.path for c in dp.paths.sets[exit_key].candidates]
    assert paths == [Path(RELAY, relay.address(v, exit_key)) for v in (r1, r2)]  # no direct
    assert peer.path == paths[0]
    row = client.report(now=0.0)
    assert row["hops"] == 2 and row["providers"][0]["relays"] == [encode_key(r1), encode_key(r2)]
    assert client._path_of(exit_key) == {"transport": RELAY, "via": encode_key(r1), "up": False}
    # an exit that was our peer before (configured, a bootstrap) knows our address: unused
    del client.ours[exit_key]
    assert client.relays_to(exit_key, now=0.0) == ({}, None)


def test_an_exit_whose_second_path_stays_silent_is_not_answering(peers: Peers) -> None:
    dp = peers.datapath
    client = ExitClient(RoutingSpec(auto=True), peers=peers, cache=RecordCache(), wall=lambda: 0.0)
    _, key = keypair("e")
    peer = dp.device.add_peer(PeerConfig(public_key=key))
    ps = dp.paths.add(peer, [Path(UDP, ("192.0.2.1", 1)), Path(UDP, ("192.0.2.2", 1))])
    first, second = ps.candidates
    first.move(Move.ANSWER)
    second.move(Move.ANSWER)
    ps.active, ps.confirmed = first, True
    peer.new_handshake = 20.0  # data went out unanswered
    ps._switch(second, "first down", now=10.0)  # failed over under traffic
    assert client.measure(key, now=10.9)[1] is not False  # a relay path answers in < 1 s
    assert client.measure(key, now=11.0)[1] is False  # the exit itself is gone
    ps._confirm(second)
    ps.unanswered = None
    assert client.measure(key, now=11.1)[1] is not False
