"""The data path without root: a socketpair stands in for the TUN, a recording transport
for the sockets. Checks the inbound order (control plane, inner source, exit policy,
credit, queue slot, TUN) and the outbound queue slot, with real link crypto."""

import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import ip_network
from typing import Any

import pytest

from tidewire.node.core import overlay
from tidewire.node.core.exit_policy import ExitPolicy
from tidewire.node.datapath import DataPath
from tidewire.node.metrics import Registry
from tidewire.protocol.control import channel
from tidewire.protocol.link.device import Device
from tidewire.protocol.link.peer import Peer, PeerConfig
from tidewire.protocol.types import UDP, Endpoint, Path

from ..unit.helpers import SeededRandom, keypair

A_ADDR, B_ADDR = ("192.0.2.1", 51820), ("198.51.100.2", 51820)
_IP = struct.Struct("!BBHHHBBH4s4s")


def udp4(src: str, dst: str, dport: int, payload: bytes = b"x" * 20) -> bytes:
    ip = _IP.pack(
        0x45, 0, 28 + len(payload), 0, 0, 64, 17, 0, socket.inet_aton(src), socket.inet_aton(dst)
    )
    return ip + struct.pack("!HHHH", 40000, dport, 8 + len(payload), 0) + payload


@dataclass
class Recorder:
    name: str = UDP
    added: list[tuple[bytes, Endpoint]] = field(default_factory=list)
    sent: list[tuple[bytes, Endpoint]] = field(default_factory=list)
    codepoints: list[int] = field(default_factory=list)  # the ECN field given with each add

    def add(self, data: bytes, address: Endpoint, ecn: int = 0) -> None:
        self.added.append((data, address))
        self.codepoints.append(ecn)

    def send_now(self, data: bytes, address: Endpoint) -> None:
        self.sent.append((data, address))

    def flush(self) -> None:
        pass

    async def serve(self, receiver: Any) -> None:
        pass

    def close(self) -> None:
        pass


class Credit:
    """Stands in for the accountant: refuses inbound packets once `allow` is False."""

    allow = True
    seen: list[int]

    def __init__(self) -> None:
        self.seen = []

    def inbound(self, peer_key: bytes, n: int) -> bool:
        self.seen.append(n)
        return self.allow

    def outbound(self, peer_key: bytes, n: int) -> bool:
        return True

    def after_batch(self, *, now: float) -> None:
        pass


@dataclass
class Pair:
    a: Device
    pa: Peer
    b: Device
    pb: Peer
    dp: DataPath  # b's data path
    tun: socket.socket  # what b writes to its TUN arrives here
    wire: Recorder


def handshake(a: Device, pa: Peer, b: Device) -> None:
    """a initiates, b answers, a's keepalive confirms the session for b (at time 0)."""
    a.initiate(pa, now=0.0)
    for data, _ in a.datagrams_to_send():
        b.receive_datagram(data, Path(UDP, A_ADDR), now=0.0)
    for data, _ in b.datagrams_to_send():
        a.receive_datagram(data, Path(UDP, B_ADDR), now=0.0)
    for data, _ in a.datagrams_to_send():
        b.receive_datagram(data, Path(UDP, A_ADDR), now=0.0)


@pytest.fixture
def pair() -> Iterator[Pair]:
    ka, pub_a = keypair("dp-a")
    kb, pub_b = keypair("dp-b")
    a = Device(private_key=ka, rng=SeededRandom("a"))
    b = Device(private_key=kb, rng=SeededRandom("b"))
    pa = a.add_peer(PeerConfig(public_key=pub_b, endpoint=B_ADDR))
    pb = b.add_peer(PeerConfig(public_key=pub_a))
    handshake(a, pa, b)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    theirs.setblocking(False)
    wire = Recorder()
    dp = DataPath(
        device=b,
        tun_fd=ours.fileno(),
        transports={UDP: wire},
        policy=None,
        persist_timestamp=lambda key, stamp: None,
    )
    dp.routes.insert(ip_network("10.0.0.1/32"), pb)
    yield Pair(a, pa, b, pb, dp, theirs, wire)
    ours.close()
    theirs.close()


def tun_packets(p: Pair) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(p.tun.recv(65536))
        except BlockingIOError:
            return out


def deliver(p: Pair, inner: bytes) -> bool:
    sealed = p.a.encrypt(p.pa, inner, now=1.0)
    assert sealed is not None
    return p.dp.receive(sealed, Path(UDP, A_ADDR), now=1.0)


def test_an_allowed_packet_reaches_the_tun(pair: Pair) -> None:
    packet = udp4("10.0.0.1", "203.0.113.9", 53)
    assert deliver(pair, packet)
    assert tun_packets(pair) == [packet]
    assert not pair.dp.drops


def test_a_foreign_inner_source_is_dropped_before_policy_and_credit(pair: Pair) -> None:
    credit = Credit()
    pair.dp.accountant = credit  # type: ignore[assignment]
    deliver(pair, udp4("10.0.0.77", "203.0.113.9", 53))
    assert tun_packets(pair) == [] and credit.seen == []
    assert pair.dp.drops["inner_source_not_allowed"] == 1


def test_the_exit_policy_refuses_before_credit_is_counted(pair: Pair) -> None:
    credit = Credit()
    pair.dp.accountant = credit  # type: ignore[assignment]
    pair.dp.policy = ExitPolicy(allow=[], deny=[], own_addresses=[])
    deliver(pair, udp4("10.0.0.1", "192.168.1.1", 53))
    assert tun_packets(pair) == [] and credit.seen == []
    assert pair.dp.drops["exit_private"] == 1
    deliver(pair, udp4("10.0.0.1", "203.0.113.9", 53))
    assert len(tun_packets(pair)) == 1 and credit.seen == [48]


def test_without_credit_nothing_reaches_the_tun(pair: Pair) -> None:
    credit = Credit()
    credit.allow = False
    pair.dp.accountant = credit  # type: ignore[assignment]
    deliver(pair, udp4("10.0.0.1", "203.0.113.9", 53))
    assert tun_packets(pair) == [] and credit.seen == [48]


def test_control_messages_go_to_their_handler_not_the_tun(pair: Pair) -> None:
    got: list[tuple[bytes, Any]] = []
    pair.dp.control.register(channel.Refusal, lambda key, msg, *, now: got.append((key, msg)))
    msg = channel.Refusal(bytes(16), 7, channel.REFUSED_OVERBILLED)
    src = overlay.overlay_address(pair.a.public_key)
    dst = overlay.overlay_address(pair.b.public_key)
    deliver(pair, overlay.build(src, dst, channel.encode(msg)))
    assert got == [(pair.a.public_key, msg)]
    assert tun_packets(pair) == []
    # a type nobody registered, and a forged overlay source, are counted drops
    deliver(pair, overlay.build(src, dst, channel.encode(channel.Hello(bytes(16), bytes(32)))))
    assert pair.dp.control.drops == {"control_unexpected": 1}
    forged = overlay.overlay_address(b"\x01" * 32)
    deliver(pair, overlay.build(forged, dst, channel.encode(msg)))
    assert pair.dp.control.drops["control_malformed"] == 1 and len(got) == 1
    assert tun_packets(pair) == []


async def test_the_outbound_queue_slot_sees_every_routed_packet(pair: Pair) -> None:
    held: list[Any] = []

    class Holding:
        drops = 0

        def enqueue(self, item: Any, key: bytes, size: int, now: float, /) -> None:
            held.append((item, key, size))

        def release(self, *, now: float) -> None:
            for item, _, _ in held:
                pair.dp._seal(item, 1.0)  # the link's time in this test, not trio's
            held.clear()

        def get_timer(self) -> float | None:
            return None

        def handle_timer(self, *, now: float) -> None:
            pass

        def __len__(self) -> int:
            return len(held)

        def forget(self, key: bytes) -> None:
            pass

    pair.dp.set_queues(Holding(), pair.dp.in_queue)
    pair.pb.path = Path(UDP, A_ADDR)
    packet = udp4("203.0.113.9", "10.0.0.1", 5353)
    pair.dp.outbound(packet, now=1.0)
    assert len(held) == 1 and held[0][1:] == (pair.pb.public_key, len(packet))
    assert pair.wire.added == []  # nothing leaves until the queue lets it go
    pair.dp.after_batch()
    assert len(pair.wire.added) == 1 and pair.wire.added[0][1] == A_ADDR
    got = pair.a.receive_datagram(pair.wire.added[0][0], Path(UDP, B_ADDR), now=1.0)
    assert got is not None and got[1][: len(packet)] == packet


async def test_what_a_timer_lets_go_leaves_at_that_wake_up_not_at_the_next_read(
    pair: Pair,
) -> None:
    """The timer task's wake-up ends as a batch of reads ends (DataPath.after_timers): a
    packet a queue's pacer (or a relay's, node/relay.py) lets go in `handle_timer` is
    sealed and its transport flushed then. It used to wait in the transport's batch
    until the next read: a relay's paced frames stalled a download at half its rate."""
    held: list[Any] = []
    flushed: list[int] = []

    class Timed:  # lets go on its timer only, as a pacer does
        drops = 0

        def enqueue(self, item: Any, key: bytes, size: int, now: float, /) -> None:
            held.append(item)

        def release(self, *, now: float) -> None:
            pass

        def get_timer(self) -> float | None:
            return 0.0 if held else None

        def handle_timer(self, *, now: float) -> None:
            for item in held:
                pair.dp._seal(item, 1.0)
            held.clear()

        def __len__(self) -> int:
            return len(held)

        def forget(self, key: bytes) -> None:
            pass

    pair.wire.flush = lambda: flushed.append(len(pair.wire.added))  # type: ignore[method-assign]
    pair.dp.set_queues(Timed(), pair.dp.in_queue)
    pair.pb.path = Path(UDP, A_ADDR)
    pair.dp.outbound(udp4("203.0.113.9", "10.0.0.1", 5353), now=1.0)
    pair.dp.out_queue.handle_timer(now=1.0)  # the timer task's wake-up...
    pair.dp.timers.after()  # ...and what it does after its components
    assert flushed and flushed[-1] == 1  # the transport was flushed with the packet in it


def test_status_counters_come_from_the_registry() -> None:
    from collections import Counter

    reg = Registry()
    drops: Counter[str] = Counter({"exit_private": 3, "tun_no_route": 2})
    reg.counters("t_exit_total", "h", label="reason", source=drops, prefix="exit_")
    reg.value("t_n", "h", lambda: 4, kind="gauge")
    assert reg.collect("t_exit_total") == {"private": 3}
    drops["exit_smtp"] += 1
    assert reg.collect("t_exit_total") == {"private": 3, "smtp": 1}
    text = reg.render()
    assert '# TYPE t_exit_total counter\nt_exit_total{reason="private"} 3\n' in text
    assert "t_n 4\n" in text
    with pytest.raises(ValueError):
        reg.value("t_n", "again", lambda: 0, kind="gauge")
