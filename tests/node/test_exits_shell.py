"""The shell of exit choice and open admission, without root (node/exits.py,
node/exits_open.py): an admitted stranger is routed by its derived addresses and
held to max_clients; idle ones go; our record is re-signed for load at most once a
minute; a switch moves `routes` to the new exit in the cryptokey routes; a down
path makes an exit not answering."""

import ipaddress
import socket
from collections.abc import Iterator

import pytest

from tidewire.node import netconf
from tidewire.node.config.routing import RoutingSpec
from tidewire.node.core.capacity import Admission
from tidewire.node.core.discovery import RecordCache
from tidewire.node.core.open_admission import client_addresses
from tidewire.node.core.paths.candidate import Move
from tidewire.node.datapath import DataPath
from tidewire.node.exits import ExitClient
from tidewire.node.exits_open import PUBLISH_EVERY, OpenExit
from tidewire.node.peers import Peers
from tidewire.protocol.link.device import Device
from tidewire.protocol.link.peer import PeerConfig
from tidewire.protocol.types import UDP, Path

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
