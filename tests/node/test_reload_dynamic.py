"""Dynamic peers are not configuration (`PeerSpec.origin`, node/peers.py): a provider the
exit choice joined (node/exits.py) and a client an open provider admitted
(node/exits_open.py) survive a reload with their sessions, SaveConfig does not write
them into the file, and the wg API (`wg showconf`, `wg syncconf`) does not see them. A
file that names one is refused whole (node/core/reload.py, `refuse_dynamic`)."""

from collections.abc import AsyncIterator
from ipaddress import ip_network
from pathlib import Path

import pytest
import trio

from tidewire.node.config import PeerSpec
from tidewire.node.config.routing import RoutingSpec
from tidewire.node.core.discovery import RecordCache
from tidewire.node.core.exits import Offer
from tidewire.node.exits import ExitClient
from tidewire.node.exits_open import OpenExit
from tidewire.node.reload import ReloadError
from tidewire.node.service import Service
from tidewire.node.uapi_server import Uapi
from tidewire.protocol.keys import encode_key
from tidewire.protocol.link.device import Device
from tidewire.protocol.link.peer import PeerConfig
from tidewire.protocol.link.profile import Mode
from tidewire.protocol.types import UDP
from tidewire.protocol.types import Path as LinkPath

from ..unit.helpers import SeededRandom, keypair
from .reload_node import K_NODE, P_A, P_B, P_C, P_NODE, Node, config, running_node, state

K_EXIT, P_EXIT = keypair("reload-exit")
EXIT_ADDR = ("192.0.2.50", 51820)
NODE_ADDR = ("192.0.2.1", 51820)

WG_QUICK = f"""[Interface]
PrivateKey = {encode_key(K_NODE)}
ListenPort = 51820
SaveConfig = true

# the office
[Peer]
PublicKey = {encode_key(P_A)}
AllowedIPs = 10.9.0.2/32
"""


@pytest.fixture
async def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Node]:
    async with running_node(tmp_path, monkeypatch) as n:
        yield n


async def join_exit(n: Node) -> ExitClient:
    """The exit choice joins a provider, as it does one it found in the record cache."""
    spec = RoutingSpec(auto=True, routes=[ip_network("0.0.0.0/0")])
    client = ExitClient(spec, peers=n.peers, cache=RecordCache(), wall=lambda: 0.0)
    now = trio.current_time()
    offer = Offer(public_key=P_EXIT, endpoints=("udp://192.0.2.50:51820",))
    client.core.set_offers([offer], now=now)
    await client._join(P_EXIT, now=now)
    return client


def exit_session(n: Node) -> None:
    """The provider answers the initiation the join sent: a session, we initiated."""
    provider = Device(private_key=K_EXIT, rng=SeededRandom("exit"))
    provider.add_peer(PeerConfig(public_key=P_NODE, mode=Mode.NATIVE))
    now = trio.current_time()
    initiations = [d for d, addr in n.wire.sent if addr == EXIT_ADDR and d[0] == 1]
    assert initiations, "the join sent no initiation to the provider"
    provider.receive_datagram(initiations[-1], LinkPath(UDP, NODE_ADDR), now=now)
    for data, _ in provider.datagrams_to_send():
        n.datapath.device.receive_datagram(data, LinkPath(UDP, EXIT_ADDR), now=now)
    assert n.datapath.device.peers[P_EXIT].current is not None


async def test_a_reload_keeps_a_dynamic_exit_peer_and_its_session(node: Node) -> None:
    await join_exit(node)
    exit_session(node)
    assert node.peers.specs[P_EXIT].dynamic and P_EXIT not in node.peers.configured()
    peer = node.datapath.device.peers[P_EXIT]
    session = peer.current
    # the file drops peer B and changes nothing else: B goes, the provider stays
    without_b = config().split(f'[[peer]]\npublic_key = "{encode_key(P_B)}"')[0]
    node.cfg.path.write_text(without_b + '[share]\ndownload = "8 Mbit/s"\n')
    reply = await node.reloader.reload()
    assert reply["peers"]["removed"] == [encode_key(P_B)]
    assert reply["peers"]["added"] == [] and reply["peers"]["changed"] == {}
    assert node.datapath.device.peers[P_EXIT] is peer and peer.current is session
    assert node.peers.specs[P_EXIT].origin == "exit"
    again = await node.reloader.reload()  # and the next reload still has nothing to do
    assert again["changed"] is False


async def test_a_reload_keeps_an_openly_admitted_client(node: Node) -> None:
    opened = OpenExit(node.peers, max_clients=4)
    _, stranger = keypair("reload-stranger")
    peer = opened.admit(stranger, trio.current_time())
    assert peer is not None and node.peers.specs[stranger].origin == "open"
    reply = await node.reloader.reload()
    assert reply["changed"] is False and reply["peers"]["removed"] == []
    assert node.datapath.device.peers[stranger] is peer
    assert [str(n) for n in node.peers.allowed[stranger]] == [
        str(n) for n in node.peers.specs[stranger].allowed_ips
    ]


async def test_save_config_writes_the_configured_peers_and_not_the_dynamic_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_node(tmp_path, monkeypatch, text=WG_QUICK, file="twrl.conf") as n:
        await join_exit(n)
        added = PeerSpec(public_key=P_B, allowed_ips=[])  # `tidewire peer add`: configuration
        await n.peers.add(added)
        Service(n.cfg, run_hooks=False).save_config(n.peers)
        text = n.cfg.path.read_text()
    assert text.startswith(WG_QUICK)  # the file's own lines, comments too, stay
    assert f"PublicKey = {encode_key(P_B)}" in text
    assert encode_key(P_EXIT) not in text


async def test_the_wg_api_does_not_see_dynamic_peers(node: Node) -> None:
    await join_exit(node)
    opened = OpenExit(node.peers, max_clients=4)
    _, stranger = keypair("wg-stranger")
    assert opened.admit(stranger, trio.current_time()) is not None
    node.listen_port, node.mark = 51820, 51820  # type: ignore[attr-defined]
    seen = [p.public_key for p in Uapi(node).snapshot().peers]  # type: ignore[arg-type]
    assert sorted(seen) == sorted([P_A, P_B])  # `wg showconf` prints these two only


def naming(key: bytes, ips: str) -> str:
    """The file with peer C added first and `key` configured after it: a reload that stops
    at `key` would have added C already."""
    more = f'[[peer]]\npublic_key = "{encode_key(P_C)}"\nallowed_ips = ["10.9.0.4/32"]\n\n'
    more += f'[[peer]]\npublic_key = "{encode_key(key)}"\nallowed_ips = [{ips}]\n'
    return config(more=more)


async def test_a_reload_naming_a_dynamic_exit_peer_is_refused_whole(node: Node) -> None:
    await join_exit(node)
    exit_session(node)
    before = state(node)
    peer = node.datapath.device.peers[P_EXIT]
    session = peer.current
    node.cfg.path.write_text(naming(P_EXIT, '"10.9.0.50/32"'))
    lines = node.cfg.path.read_text().splitlines()
    line = [i + 1 for i, t in enumerate(lines) if t == "[[peer]]"][-1]  # the exit's
    with pytest.raises(ReloadError) as err:
        await node.reloader.reload()
    message = str(err.value)
    assert message.startswith(f"{node.cfg.path}:{line}: peer #4 public_key: ")
    assert "the exit choice" in message and message.endswith("; nothing changed")
    assert state(node) == before  # peer C was not added, nothing else moved
    assert P_C not in node.datapath.device.peers
    assert node.datapath.device.peers[P_EXIT] is peer and peer.current is session
    assert node.peers.specs[P_EXIT].origin == "exit"


async def test_a_reload_naming_an_openly_admitted_client_is_refused_whole(node: Node) -> None:
    opened = OpenExit(node.peers, max_clients=4)
    _, stranger = keypair("reload-stranger")
    assert opened.admit(stranger, trio.current_time()) is not None
    before = state(node)
    node.cfg.path.write_text(naming(stranger, '"10.9.0.60/32"'))
    with pytest.raises(ReloadError, match=r"open admission.*; nothing changed$"):
        await node.reloader.reload()
    assert state(node) == before
    assert node.peers.specs[stranger].origin == "open"
    assert stranger in opened.core.dynamic
