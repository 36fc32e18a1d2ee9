"""The node a reload test needs, without root: a real link, data path, peers and [share]
queues, built as `Daemon.run` builds them; a socketpair stands in for the TUN, a recorder
for the UDP transport, and the kernel's routes are recorded (tests/node/test_reload*.py)."""

import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from tidewire.node import netconf, sdnotify
from tidewire.node.config import load
from tidewire.node.datapath import DataPath
from tidewire.node.peers import Peers
from tidewire.node.relay import RelayNode
from tidewire.node.reload import Reloader
from tidewire.node.sharing import Sharing
from tidewire.node.transports.relay import RelayTransport
from tidewire.protocol.keys import encode_key
from tidewire.protocol.link.device import Device
from tidewire.protocol.link.peer import PeerConfig
from tidewire.protocol.link.profile import Mode
from tidewire.protocol.types import UDP
from tidewire.protocol.types import Path as LinkPath

from ..unit.helpers import SeededRandom, keypair

K_NODE, P_NODE = keypair("reload-node")
K_A, P_A = keypair("reload-a")
_, P_B = keypair("reload-b")
_, P_C = keypair("reload-c")
A_ADDR = ("192.0.2.7", 40000)


def config(
    *, a_ips: str = '"10.9.0.2/32"', download: str = "8 Mbit/s", extra: str = "", more: str = ""
) -> str:
    return f"""[interface]
name = "twrl"
private_key = "{encode_key(K_NODE)}"
listen_port = 51820

[[peer]]
public_key = "{encode_key(P_A)}"
allowed_ips = [{a_ips}]

[[peer]]
public_key = "{encode_key(P_B)}"
allowed_ips = ["10.9.0.3/32"]
{more}
[share]
download = "{download}"
{extra}"""


class Wire:
    """The UDP transport: records what the node sends."""

    name = UDP

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []

    def send_now(self, data: bytes, address: tuple[str, int]) -> None:
        self.sent.append((data, address))

    def add(self, data: bytes, address: tuple[str, int]) -> None:
        self.sent.append((data, address))

    def flush(self) -> None:
        pass


class Node:
    """What a reload needs of the daemon, built as `Daemon.run` builds it."""

    def __init__(self, path: Path, routes: list[tuple[str, str]]) -> None:
        self.cfg = load(path)
        self.exit_enabled = True
        self.exit_flag = False
        self.outbound_interface = None
        self.timestamps = None
        self.dns_record = None
        self.tun, self.tun_peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        device = Device(private_key=self.cfg.private_key, rng=os.urandom)
        self.wire = Wire()
        self.datapath = DataPath(
            device=device,
            tun_fd=self.tun.fileno(),
            transports={UDP: self.wire},  # type: ignore[dict-item]
            policy=None,
            persist_timestamp=lambda key, stamp: None,
        )
        routing = netconf.Routing.of("auto", mark=0)
        self.peers = Peers(name="twrl", table=routing, datapath=self.datapath, exit_enabled=True)
        self.sharing = Sharing(self.datapath, self.cfg.share, provider=True, state_dir=path.parent)
        self.notifier = sdnotify.Notifier({})  # no service manager: every message is a no-op
        self.relay: RelayNode | None = None
        if self.cfg.relay.enabled:
            self.relay = RelayNode(
                self.datapath,
                RelayTransport(self.datapath.drops),
                config=self.cfg.relay,
                route=lambda key: None,
                trusted=lambda key: False,
            )
        self.reloader = Reloader(self)  # type: ignore[arg-type]
        self.cancel = trio.CancelScope()


@asynccontextmanager
async def running_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, text: str = "", file: str = "twrl.toml"
) -> AsyncIterator[Node]:
    """The node of `text` (a TOML or wg-quick config; default `config()`) in `file`."""
    routes: list[tuple[str, str]] = []

    def add(name: str, nets: list[Any], *, table: int) -> None:
        routes.extend(("add", str(n)) for n in nets)

    def remove(name: str, nets: list[Any], *, table: int) -> None:
        routes.extend(("remove", str(n)) for n in nets)

    monkeypatch.setattr(netconf, "add_routes", add)
    monkeypatch.setattr(netconf, "remove_routes", remove)
    path = tmp_path / file
    path.write_text(text or config())
    n = Node(path, routes)
    for spec in n.cfg.peers:
        await n.peers.add(spec)
    n.routes = routes  # type: ignore[attr-defined]
    try:
        yield n
    finally:
        n.tun.close()
        n.tun_peer.close()


def handshake(n: Node) -> Device:
    """A session between peer A and the node, as a client dialling it makes one."""
    a = Device(private_key=K_A, rng=SeededRandom("a"))
    pa = a.add_peer(PeerConfig(public_key=P_NODE, endpoint=("192.0.2.1", 51820), mode=Mode.NATIVE))
    dev = n.datapath.device
    now = trio.current_time()
    a.initiate(pa, now=now)
    for data, _ in a.datagrams_to_send():
        dev.receive_datagram(data, LinkPath(UDP, A_ADDR), now=now)
    for data, _ in dev.datagrams_to_send():
        a.receive_datagram(data, LinkPath(UDP, ("192.0.2.1", 51820)), now=now)
    for data, _ in a.datagrams_to_send():
        dev.receive_datagram(data, LinkPath(UDP, A_ADDR), now=now)
    assert dev.peers[P_A].current is not None
    return a


def state(n: Node) -> tuple[object, ...]:
    """Everything a refused reload must leave as it was."""
    dev = n.datapath.device
    q = n.sharing.out_queue
    assert q is not None
    return (
        sorted(dev.peers),
        {k: [str(x) for x in v] for k, v in n.peers.allowed.items()},
        [(p.current, p.path, p.persistent_keepalive) for p in dev.peers.values()],
        q.rate,
        n.cfg,
        list(n.routes),  # type: ignore[attr-defined]
    )
