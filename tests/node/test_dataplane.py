"""The data plane choice in the shell: DataPath seals a batch per peer in one native call
when the native plane runs, the node falls back to the Python path when the module is
missing or fails its self-test, and `tidewire status` says which one runs. TUN writes
are coalesced and written natively with the Python path's outcomes and drop reasons."""

import contextlib
import os
import socket
from ipaddress import ip_network
from typing import Any

import pytest
from scapy.layers.inet import IP, TCP

from tidewire.cli.cmd_status import render
from tidewire.node import dataplane
from tidewire.node.core.gro import GSO_TCPV4, coalesce
from tidewire.node.datapath import DataPath
from tidewire.protocol.link.device import Device
from tidewire.protocol.link.peer import PeerConfig
from tidewire.protocol.types import UDP, Path

from ..unit.helpers import SeededRandom, keypair
from .test_datapath import B_ADDR, Recorder, handshake, udp4

needs_native = pytest.mark.skipif(
    dataplane.load() is None, reason="tidewire._dataplane is not built (scripts/setup)"
)


@needs_native
def test_a_batch_is_sealed_natively_when_it_ends() -> None:
    choice = dataplane.choose(None)
    assert choice.name == "native"
    ka, pub_a = keypair("dp-a")
    kb, pub_b = keypair("dp-b")
    a = Device(private_key=ka, rng=SeededRandom("a"))
    b = Device(private_key=kb, rng=SeededRandom("b"))
    b.native = choice.factory  # b's keypairs get native sessions; a stays on Python
    pa = a.add_peer(PeerConfig(public_key=pub_b, endpoint=B_ADDR))
    pb = b.add_peer(PeerConfig(public_key=pub_a))
    handshake(a, pa, b)
    assert pb.current is not None and pb.current.native is not None
    wire = Recorder()
    dp = DataPath(
        device=b,
        tun_fd=-1,
        transports={UDP: wire},
        policy=None,
        persist_timestamp=lambda k, s: None,
    )
    dp.use_dataplane(choice)
    dp.routes.insert(ip_network("10.0.0.1/32"), pb)
    packets = [udp4("203.0.113.9", "10.0.0.1", 53, bytes([i]) * (10 + i)) for i in range(3)]
    sealed: list[Any] = []
    real = pb.current.native
    pb.current.native = Spy(real, sealed)
    for p in packets:
        dp.outbound(p, now=1.0)
    assert wire.added == []  # held for the batch
    dp.seal_batches(now=1.0)  # after_batch's first step, at the link's time in this test
    assert sealed == [3]  # one native call for the three
    assert pb.current.send_counter == 3
    opened = [a.receive_datagram(d, Path(UDP, B_ADDR), now=1.0) for d, _ in wire.added]
    assert [o[1][: len(p)] for o, p in zip(opened, packets, strict=True) if o] == packets


class Spy:
    def __init__(self, real: Any, calls: list[int]) -> None:
        self.real, self.calls = real, calls

    def seal_batch(self, packets: list[bytes], **kw: Any) -> Any:
        self.calls.append(len(packets))
        return self.real.seal_batch(packets, **kw)

    def __getattr__(self, name: str) -> Any:  # the rest of the session as it is
        return getattr(self.real, name)


def test_a_missing_module_runs_the_python_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dataplane, "load", lambda: None)
    choice = dataplane.choose(None)
    assert (choice.name, choice.factory) == ("python", None)
    assert choice.why == "the native module tidewire._dataplane is not built"


def test_a_module_failing_its_self_test_runs_the_python_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Wrong:
        REPLAY_WINDOW = 64

    monkeypatch.setattr(dataplane, "load", lambda: Wrong)
    choice = dataplane.choose("native")
    assert choice.name == "python" and "self-test" in choice.why and "8128" in choice.why


def test_status_shows_the_data_plane() -> None:
    st = {
        "interface": "tw0",
        "public_key": "k",
        "listen_port": 1,
        "dataplane": "native",
        "dataplane_why": "built and self-tested",
        "exit": {"enabled": False},
        "drops": {},
        "peers": [],
    }
    assert "  data plane: native (built and self-tested)" in render(st).splitlines()


def _tun_datapath(plane: str) -> tuple[DataPath, socket.socket, socket.socket]:
    """A DataPath on `plane` whose TUN is a datagram socket (one datagram per write(2),
    like a TUN), that socket and its other end."""
    tun, reader = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    tun.setblocking(False)
    ka, _ = keypair("tun-write")
    dp = DataPath(
        device=Device(private_key=ka, rng=SeededRandom("w")),
        tun_fd=tun.fileno(),
        transports={},
        policy=None,
        persist_timestamp=lambda k, s: None,
    )
    dp.use_dataplane(dataplane.choose(plane))
    dp.tun_gro = True
    return dp, tun, reader


def _segments(n: int) -> list[bytes]:
    """A run of TCP segments of one flow (the batch coalesces into one write) and a UDP
    packet after it (a write of its own)."""
    return [
        bytes(IP(src="10.0.0.2", dst="10.0.0.1") / TCP(seq=1 + i * 500, flags="A") / bytes(500))
        for i in range(n)
    ] + [udp4("10.0.0.2", "10.0.0.1", 53, b"q")]


@needs_native
@pytest.mark.parametrize("plane", ["native", "python"])
def test_tun_writes_are_coalesced_and_written_the_same_on_both_planes(plane: str) -> None:
    dp, _tun, reader = _tun_datapath(plane)
    assert (dp._native_write is not None) is (plane == "native")
    dp.tun_out = _segments(20)
    dp.flush_tun()
    got = [reader.recv(70000) for _ in range(2)]
    assert got == coalesce(_segments(20))
    assert got[0][1] == GSO_TCPV4 and dp.tun_out == [] and not dp.drops


@needs_native
@pytest.mark.parametrize("plane", ["native", "python"])
def test_a_full_or_failing_tun_costs_only_the_frames_it_refused(plane: str) -> None:
    dp, _tun, reader = _tun_datapath(plane)
    # UDP packets never coalesce: 300 writes, more than an unread socket queues
    dp.tun_out = [udp4("10.0.0.2", "10.0.0.1", 53, bytes([i % 256])) for i in range(300)]
    dp.flush_tun()
    queued = 0
    reader.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        while reader.recv(100):
            queued += 1
    assert 0 < queued < 300 and dp.drops["tun_write_full"] == 300 - queued
    dp.tun_fd = os.open(os.devnull, os.O_RDONLY)  # write(2) fails with EBADF
    try:
        dp.tun_out = _segments(3)
        dp.flush_tun()
    finally:
        os.close(dp.tun_fd)
    assert dp.drops["tun_write_failed"] == 2  # the coalesced run and the UDP packet
