"""Reloading a running node's config without root: a real link, data path, peers and
[share] queues (a socketpair stands in for the TUN, the kernel's routes are recorded).
A config that fails to load changes nothing and says why; a good one applies its
difference and the sessions of unchanged peers survive it; SIGHUP reloads and does
not stop the node."""

import io
import json
import os
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest
import trio

from tidewire.node import control, netconf
from tidewire.node.config import load
from tidewire.node.daemon import Daemon
from tidewire.node.datapath import DataPath
from tidewire.node.handlers import Handlers
from tidewire.node.peers import Peers
from tidewire.node.reload import Reloader, ReloadError
from tidewire.node.sharing import Sharing
from tidewire.protocol.keys import encode_key
from tidewire.protocol.link.device import Device
from tidewire.protocol.link.peer import PeerConfig
from tidewire.protocol.link.profile import Mode
from tidewire.protocol.types import UDP
from tidewire.protocol.types import Path as LinkPath

from ..unit.helpers import SeededRandom, keypair
from .test_datapath import udp4

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
        self.peers = Peers(name="twrl", table=0, datapath=self.datapath, exit_enabled=True)
        self.sharing = Sharing(self.datapath, self.cfg.share, provider=True, state_dir=path.parent)
        self.reloader = Reloader(self)  # type: ignore[arg-type]
        self.cancel = trio.CancelScope()


@pytest.fixture
async def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Node]:
    routes: list[tuple[str, str]] = []

    def add(name: str, nets: list[Any], *, table: int) -> None:
        routes.extend(("add", str(n)) for n in nets)

    def remove(name: str, nets: list[Any], *, table: int) -> None:
        routes.extend(("remove", str(n)) for n in nets)

    monkeypatch.setattr(netconf, "add_routes", add)
    monkeypatch.setattr(netconf, "remove_routes", remove)
    path = tmp_path / "twrl.toml"
    path.write_text(config())
    n = Node(path, routes)
    for spec in n.cfg.peers:
        await n.peers.add(spec)
    n.routes = routes  # type: ignore[attr-defined]
    yield n
    n.tun.close()
    n.tun_peer.close()


def handshake(n: Node) -> Device:
    """A session between peer A and the node, as a client dialling it makes one."""
    a = Device(private_key=K_A, rng=SeededRandom("a"))
    pa = a.add_peer(
        PeerConfig(public_key=P_NODE, endpoint=("192.0.2.1", 51820), mode=Mode.NATIVE)
    )
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
        q.bucket.rate,
        n.cfg,
        list(n.routes),  # type: ignore[attr-defined]
    )


@pytest.mark.parametrize(
    ("text", "sentence"),
    [
        (config().replace('"10.9.0.3/32"', '"10.9.0.3/33"'), ":12: [[peer]] #2 allowed_ips"),
        (config(download="fast"), ":15: [share] download: 'fast' is not"),
        (config(a_ips='"10.9.0.3/32"'), ":10: peer #2 allowed IPs: 10.9.0.3/32 belongs to peer"),
        (config() + "[exit\n", ":16:"),
    ],
)
async def test_a_config_that_fails_to_load_changes_nothing_and_says_why(
    node: Node, text: str, sentence: str
) -> None:
    handshake(node)
    before = state(node)
    node.cfg.path.write_text(text)
    with pytest.raises(ReloadError) as err:
        await node.reloader.reload()
    message = str(err.value)
    assert message.startswith(str(node.cfg.path))
    assert sentence in message
    assert message.endswith("; nothing changed")
    assert "\n" not in message
    assert state(node) == before


async def test_an_endpoint_that_does_not_resolve_changes_nothing(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tidewire.node.config import system

    def no_dns(host: str, port: int) -> tuple[str, int]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(system, "resolve", no_dns)
    monkeypatch.setattr("tidewire.node.reload.resolve", no_dns)
    before = state(node)
    node.cfg.path.write_text(config(more='endpoint = "peer.invalid:51820"\n'))
    match = r"twrl.toml:13: \[\[peer\]\] #2 endpoint: cannot resolve"
    with pytest.raises(ReloadError, match=match):
        await node.reloader.reload()
    assert state(node) == before


async def test_a_reload_applies_the_difference_and_the_session_survives(node: Node) -> None:
    handshake(node)
    dev = node.datapath.device
    peer_a, session = dev.peers[P_A], dev.peers[P_A].current
    q = node.sharing.out_queue
    assert q is not None and q.bucket.rate == 1_000_000
    node.routes.clear()  # type: ignore[attr-defined]
    node.cfg.path.write_text(
        config(a_ips='"10.9.0.2/32", "10.9.1.0/24"', download="16 Mbit/s").replace(
            f'public_key = "{encode_key(P_B)}"', f'public_key = "{encode_key(P_C)}"'
        )
    )
    reply = await node.reloader.reload()
    assert reply["changed"]
    assert reply["peers"] == {
        "added": [encode_key(P_C)],
        "removed": [encode_key(P_B)],
        "changed": {encode_key(P_A): ["allowed_ips"]},
    }
    assert reply["share"] == ["download"]
    assert reply["restart_needed"] == []
    # A's session is the same object: no new handshake, counters kept
    assert dev.peers[P_A] is peer_a and peer_a.current is session
    assert node.wire.sent == []  # nothing sent at all: no initiation
    assert sorted(dev.peers) == sorted([P_A, P_C])
    assert [str(n) for n in node.peers.allowed[P_A]] == ["10.9.0.2/32", "10.9.1.0/24"]
    assert node.datapath.routes.lookup_v4(int(ip_address("10.9.1.7"))) is peer_a
    assert node.sharing.out_queue is q and q.bucket.rate == 2_000_000  # the same queue
    # C took B's prefix before B went: its kernel route was never missing
    assert sorted(node.routes) == [("add", "10.9.0.3/32"), ("add", "10.9.1.0/24")]  # type: ignore[attr-defined]
    again = await node.reloader.reload()  # the same file again: nothing to do
    assert not again["changed"]


async def test_what_needs_a_restart_is_reported_and_left_running(node: Node) -> None:
    node.cfg.path.write_text(config().replace("listen_port = 51820", "listen_port = 51999"))
    reply = await node.reloader.reload()
    assert reply["restart_needed"] == ["[interface] listen"]
    assert not reply["changed"]
    assert node.cfg.listen_port == 51820
    assert (await node.reloader.reload())["restart_needed"] == ["[interface] listen"]


async def test_the_reload_request_answers_with_the_error_sentence(node: Node) -> None:
    handlers = Handlers(node)  # type: ignore[arg-type]
    node.cfg.path.write_text("[interface\n")
    with pytest.raises(control.RequestError, match=r"twrl.toml:1: .*; nothing changed$"):
        await handlers({"cmd": "reload"})
    node.cfg.path.write_text(config(download="4 Mbit/s"))
    reply = await handlers({"cmd": "reload"})
    assert reply["reload"]["share"] == ["download"]


async def test_sighup_reloads_and_the_node_keeps_running(node: Node) -> None:
    calls: list[str] = []
    real = node.reloader.reload

    async def reload() -> dict[str, Any]:
        calls.append("reload")
        if len(calls) == 1:
            raise ReloadError("x.toml:1: file: broken; nothing changed")  # logged, not fatal
        return await real()

    node.reloader.reload = reload  # type: ignore[method-assign]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(Daemon._signals, node)  # type: ignore[arg-type]
        await trio.sleep(0.05)
        for n in (1, 2):  # the second after the first one's failure: the node ran on
            os.kill(os.getpid(), signal.SIGHUP)
            with trio.fail_after(5):
                while len(calls) < n:
                    await trio.sleep(0.01)
            assert not node.cancel.cancel_called
        os.kill(os.getpid(), signal.SIGTERM)
        with trio.fail_after(5):
            while not node.cancel.cancel_called:
                await trio.sleep(0.01)
    assert calls == ["reload", "reload"]


async def test_a_peer_changed_in_place_keeps_its_session(node: Node) -> None:
    handshake(node)
    dev = node.datapath.device
    peer_a, session = dev.peers[P_A], dev.peers[P_A].current
    psk = bytes(range(32))
    node.cfg.path.write_text(
        config().replace(
            '"10.9.0.2/32"]',
            '"10.9.0.2/32"]\nendpoint = "192.0.2.99:51820"\npersistent_keepalive = 25\n'
            f'preshared_key = "{encode_key(psk)}"',
        )
    )
    reply = await node.reloader.reload()
    fields = ["endpoint", "persistent_keepalive", "preshared_key"]
    assert reply["peers"]["changed"] == {encode_key(P_A): fields}
    assert dev.peers[P_A] is peer_a and peer_a.current is session
    assert peer_a.path == LinkPath(UDP, ("192.0.2.99", 51820))
    assert peer_a.persistent_keepalive == 25.0
    assert peer_a.handshake.preshared_key == psk  # for the next handshake
    sent = node.wire.sent  # keepalive turned on: one keepalive, on the session
    assert [(len(data), addr) for data, addr in sent] == [(32, ("192.0.2.99", 51820))]
    assert sent[0][0][0] == 4  # a data message with no payload, not an initiation


async def test_a_new_mode_is_a_new_peer(node: Node) -> None:
    handshake(node)
    dev = node.datapath.device
    peer_a = dev.peers[P_A]
    wireguard = config().replace('"10.9.0.2/32"]', '"10.9.0.2/32"]\nmode = "wireguard"')
    node.cfg.path.write_text(wireguard)
    reply = await node.reloader.reload()
    assert reply["peers"]["changed"] == {encode_key(P_A): ["mode"]}
    assert dev.peers[P_A] is not peer_a and dev.peers[P_A].current is None
    assert dev.peers[P_A].profile.mode is Mode.WIREGUARD
    assert [str(n) for n in node.peers.allowed[P_A]] == ["10.9.0.2/32"]


async def test_tidewire_reload_prints_the_changes_or_the_error(
    node: Node, tmp_path: Path
) -> None:
    from tidewire.cli.env import Environment
    from tidewire.cli.main import main

    sock = tmp_path / "twrl.sock"

    def cli(*argv: str) -> tuple[int, str, str]:
        env = Environment(stdout=io.StringIO(), stderr=io.StringIO())
        code = main(["reload", *argv, "--socket", str(sock)], env)
        return code, env.stdout.getvalue(), env.stderr.getvalue()  # type: ignore[attr-defined]

    async with trio.open_nursery() as nursery:
        await nursery.start(control.serve, sock, Handlers(node))  # type: ignore[arg-type]
        node.cfg.path.write_text(
            config(download="16 Mbit/s").replace("listen_port = 51820", "listen_port = 1")
        )
        code, out, err = await trio.to_thread.run_sync(cli)
        assert (code, err) == (0, "")
        assert out == (
            f"reloaded {node.cfg.path}\n"
            "  share:         download\n"
            "  needs a restart (still as it runs): [interface] listen\n"
        )
        code, out, err = await trio.to_thread.run_sync(cli, "--json")
        assert code == 0 and json.loads(out) == {
            "config": str(node.cfg.path),
            "changed": False,
            "peers": {"added": [], "removed": [], "changed": {}},
            "share": [],
            "exit_policy": False,
            "dns": False,
            "restart_needed": ["[interface] listen"],
        }
        node.cfg.path.write_text("[interface\n")
        code, out, err = await trio.to_thread.run_sync(cli)
        assert code == 1 and out == ""
        assert err.startswith(f"tidewire: {node.cfg.path}:1: ") and err.count("\n") == 1
        assert err.endswith("; nothing changed\n")
        nursery.cancel_scope.cancel()


async def test_exit_rules_are_swapped_in_one_nft_transaction(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tidewire.node import firewall
    from tidewire.node.core.exit_policy import ExitPolicy
    from tidewire.node.core.packet import inspect

    scripts: list[str] = []
    answer = 0

    def nft(script: str) -> subprocess.CompletedProcess[str]:
        scripts.append(script)
        return subprocess.CompletedProcess(["nft"], answer, "", "Error: no" if answer else "")

    monkeypatch.setattr(firewall, "_nft", nft)
    policy = node.datapath.policy = ExitPolicy(own_addresses=[])
    node.outbound_interface = "wan0"  # type: ignore[assignment]
    def verdict(packet: bytes) -> str | None:
        inner = inspect(packet)
        assert inner is not None
        return policy.check(inner)

    packet = udp4("10.9.0.2", "198.51.100.7", 53)
    assert verdict(packet) is None
    node.cfg.path.write_text(config(extra='\n[exit]\ndeny = ["198.51.100.0/24"]\n'))
    reply = await node.reloader.reload()
    assert reply["exit_policy"] and reply["restart_needed"] == []
    assert verdict(packet) == "operator"  # the same policy object, new rules
    assert len(scripts) == 1  # one transaction: no moment without the table
    head = "table inet tidewire_twrl\ndelete table inet tidewire_twrl\ntable inet tidewire_twrl {"
    assert scripts[0].startswith(head)
    assert 'iifname "twrl" ip daddr 198.51.100.0/24 counter drop' in scripts[0]
    answer = 1  # nft refuses: the old rules stay, in nft and in the node
    node.cfg.path.write_text(config(extra='\n[exit]\ndeny = ["203.0.113.0/24"]\n'))
    with pytest.raises(ReloadError, match="nft refused the exit rules: Error: no; nothing changed"):
        await node.reloader.reload()
    assert verdict(udp4("10.9.0.2", "203.0.113.7", 53)) is None
    assert verdict(packet) == "operator"
