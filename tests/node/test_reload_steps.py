"""Reload steps without root (tests/node/reload_node.py): a peer changed in place keeps its
session, a new mode is a new peer, exit rules are swapped in one nft transaction, and
`tidewire reload` prints the changes (a table or JSON) or the error sentence."""

import io
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from tidewire.node import control
from tidewire.node.handlers import Handlers
from tidewire.node.reload import ReloadError
from tidewire.protocol.keys import encode_key
from tidewire.protocol.link.profile import Mode
from tidewire.protocol.types import UDP
from tidewire.protocol.types import Path as LinkPath

from .reload_node import K_NODE, P_A, P_B, Node, config, handshake, running_node
from .test_datapath import udp4


@pytest.fixture
async def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Node]:
    async with running_node(tmp_path, monkeypatch) as n:
        yield n


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
            "relay": [],
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


def wg_quick(*peers: tuple[bytes, str]) -> str:
    lines = ["[Interface]", f"PrivateKey = {encode_key(K_NODE)}", "ListenPort = 51820", ""]
    for key, ips in peers:
        lines += ["[Peer]", f"PublicKey = {encode_key(key)}", f"AllowedIPs = {ips}", ""]
    return "\n".join(lines)


async def test_a_wg_quick_file_reloads_the_same_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = wg_quick((P_A, "10.9.0.2/32"))
    async with running_node(tmp_path, monkeypatch, text=start, file="twrl.conf") as n:
        assert n.cfg.format != "toml"
        peer_a = n.datapath.device.peers[P_A]
        n.cfg.path.write_text(wg_quick((P_A, "10.9.0.2/32, 10.9.1.0/24"), (P_B, "10.9.0.3/32")))
        reply = await n.reloader.reload()
        assert reply["peers"] == {
            "added": [encode_key(P_B)],
            "removed": [],
            "changed": {encode_key(P_A): ["allowed_ips"]},
        }
        assert n.datapath.device.peers[P_A] is peer_a
        assert n.datapath.device.peers[P_B].profile.mode is Mode.WIREGUARD
        n.cfg.path.write_text("[Interface]\nPrivateKey = nope\n")
        with pytest.raises(ReloadError, match=r"twrl.conf:2: .*; nothing changed$"):
            await n.reloader.reload()
        assert sorted(n.datapath.device.peers) == sorted([P_A, P_B])
