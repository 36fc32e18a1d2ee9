"""Reloading a running node's config without root (tests/node/reload_node.py): a config
that fails to load changes nothing and says why; a good one applies its difference and
the sessions of unchanged peers survive it; SIGHUP reloads and does not stop the node."""

import os
import signal
import socket
from collections.abc import AsyncIterator
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest
import trio

from tidewire.cli.cmd_reload import render
from tidewire.node import control
from tidewire.node.daemon import Daemon
from tidewire.node.handlers import Handlers
from tidewire.node.reload import ReloadError
from tidewire.protocol.keys import encode_key

from .reload_node import P_A, P_B, P_C, Node, config, handshake, running_node, state


@pytest.fixture
async def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Node]:
    async with running_node(tmp_path, monkeypatch) as n:
        yield n


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
    assert q is not None and q.rate == 1_000_000
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
    assert node.sharing.out_queue is q and q.rate == 2_000_000  # the same queue
    # C took B's prefix before B went: its kernel route was never missing
    assert sorted(node.routes) == [("add", "10.9.0.3/32"), ("add", "10.9.1.0/24")]  # type: ignore[attr-defined]
    again = await node.reloader.reload()  # the same file again: nothing to do
    assert not again["changed"]


async def test_a_reload_changes_the_relays_limits_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay = '[relay]\nenabled = true\npair_rate = "{}"\n'
    text = config(more=relay.format("20 Mbit/s"))
    async with running_node(tmp_path, monkeypatch, text=text) as n:
        assert n.relay is not None and n.relay.status()["pair_rate"] == 2_500_000
        core = n.relay.core
        n.cfg.path.write_text(config(more=relay.format("40 Mbit/s") + "max_pairs = 9\n"))
        reply = await n.reloader.reload()
        assert reply["relay"] == ["pair_rate", "max_pairs"] and reply["restart_needed"] == []
        assert "  relay:         pair_rate, max_pairs" in render(reply).splitlines()
        assert n.relay.core is core and n.relay.status()["pair_rate"] == 5_000_000
        assert core.config.max_pairs == 9 and n.cfg.relay.pair_rate == 5_000_000
        n.cfg.path.write_text(
            config(more=relay.format("40 Mbit/s") + "max_pairs = 9\nrequire_receipts = true\n")
        )
        reply = await n.reloader.reload()
        assert reply["restart_needed"] == ["[relay] enabled, require_receipts"]
        assert not core.config.require_receipts


async def test_what_needs_a_restart_is_reported_and_left_running(node: Node) -> None:
    node.cfg.path.write_text(config().replace("listen_port = 51820", "listen_port = 51999"))
    reply = await node.reloader.reload()
    assert reply["restart_needed"] == ["[interface] listen"]
    assert not reply["changed"]
    assert node.cfg.listen_port == 51820
    assert (await node.reloader.reload())["restart_needed"] == ["[interface] listen"]


async def test_a_share_the_native_threads_would_bypass_waits_for_a_restart(node: Node) -> None:
    """The native threads have no queues: while they read the TUN and the sockets, a
    [share] that shapes is listed as needing a restart and the running one stays."""
    q = node.sharing.out_queue
    assert q is not None and q.rate == 1_000_000
    node.datapath.native_threads = True
    node.cfg.path.write_text(config(download="16 Mbit/s"))
    reply = await node.reloader.reload()
    assert reply["share"] == [] and reply["restart_needed"] == ["[share]"]
    assert node.sharing.out_queue is q and q.rate == 1_000_000
    node.datapath.native_threads = False  # the Python readers: applied in place
    assert (await node.reloader.reload())["share"] == ["download"]
    assert q.rate == 2_000_000


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
