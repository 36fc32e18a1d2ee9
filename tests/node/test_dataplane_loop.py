"""The native threads' Trio side (node/dataplane_loop.py, dataplane_send.py) with real
link crypto and the module's `Inbound` and `Outbound`, driven through `handle` (each
thread's per-read work without I/O): what they install, how the polled counters reach
the link's timers, rx/tx bytes and accounting, and how hand-backs take the Python path."""

import socket
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import ip_network
from typing import Any

import pytest

from tidewire.node.accounting_gate import CreditGates
from tidewire.node.core.accounting import AccountingConfig, ClientCredit, ServedSession
from tidewire.node.core.exit_policy import ExitPolicy, parse_rule
from tidewire.node.core.roles import Role
from tidewire.node.datapath import DataPath
from tidewire.node.dataplane import choose, load
from tidewire.node.dataplane_loop import NativeInbound, eligible
from tidewire.node.transports.masked import MaskedTransport
from tidewire.protocol.link.constants import REJECT_AFTER_MESSAGES, REJECT_AFTER_TIME
from tidewire.protocol.link.device import Device
from tidewire.protocol.link.peer import PeerConfig
from tidewire.protocol.skins.masked import MaskedSkin
from tidewire.protocol.types import MASKED, UDP, Path

from ..unit.helpers import SeededRandom, keypair
from .test_datapath import A_ADDR, B_ADDR, Recorder, handshake, tun_packets, udp4

native = load()
pytestmark = pytest.mark.skipif(
    native is None or not hasattr(native, "Inbound"),
    reason="tidewire._dataplane with its receive thread is not built (scripts/setup)",
)


@dataclass
class Used:
    refused: bool = False


@dataclass
class Counting:
    """Stands in for the accountant: counts inbound bytes, knows roles."""

    roles: dict[bytes, Role] = field(default_factory=dict)
    used: dict[bytes, Used] = field(default_factory=dict)
    seen: list[int] = field(default_factory=list)
    gates: CreditGates | None = None
    held: Counter[str] = field(default_factory=Counter)

    def held_back(self, n: int, reason: str) -> None:
        self.held[reason] += n

    def inbound(self, peer_key: bytes, n: int) -> bool:
        self.seen.append(n)
        return True

    def outbound(self, peer_key: bytes, n: int) -> bool:
        return True

    def native_inbound(self, peer_key: bytes, n: int) -> bool:  # as the Accountant's
        if self.gates is not None and self.gates.charge(peer_key, n, up=True):
            return True
        return self.inbound(peer_key, n)

    def native_outbound(self, peer_key: bytes, n: int) -> bool:
        if self.gates is not None and self.gates.charge(peer_key, n, up=False):
            return True
        return self.outbound(peer_key, n)

    def after_batch(self, *, now: float) -> None:
        pass


class Udp:
    """Stands in for the UDP transport: no sockets, hand-backs straight to the data path."""

    def __init__(self) -> None:
        self.sockets: dict[int, socket.socket] = {}
        self.batch = Recorder()
        self.batch.gso = True  # type: ignore[attr-defined]
        self.batch.ecn_send = True  # type: ignore[attr-defined]

    def deliver(
        self, dp: DataPath, datagrams: list[bytes], path: Path, *args: Any, now: float
    ) -> bool:
        return any([dp.receive(d, path, now=now) for d in datagrams])


@dataclass
class Loop:
    a: Device
    pa: Any
    b: Device
    pb: Any
    dp: DataPath
    tun: socket.socket
    loop: NativeInbound
    acct: Counting


@pytest.fixture
def loop() -> Iterator[Loop]:
    ka, pub_a = keypair("dp-a")
    kb, pub_b = keypair("dp-b")
    choice = choose("native")
    a = Device(private_key=ka, rng=SeededRandom("a"))
    b = Device(private_key=kb, rng=SeededRandom("b"))
    a.native = b.native = choice.factory
    pa = a.add_peer(PeerConfig(public_key=pub_b, endpoint=B_ADDR))
    pb = b.add_peer(PeerConfig(public_key=pub_a))
    handshake(a, pa, b)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    theirs.setblocking(False)
    dp = DataPath(
        device=b,
        tun_fd=ours.fileno(),
        transports={UDP: Recorder()},
        policy=None,
        persist_timestamp=lambda key, stamp: None,
    )
    dp.use_dataplane(choice)
    acct = Counting()
    dp.accountant = acct  # type: ignore[assignment]
    dp.routes.insert(ip_network("10.0.0.1/32"), pb)
    ni = NativeInbound(dp, Udp())  # type: ignore[arg-type]
    assert native is not None
    ni.thread = native.Inbound(
        sockets=[],
        tun_fd=-1,
        tun_gro=False,
        overlay=dp.control.local_overlay,
        limit=REJECT_AFTER_MESSAGES,
    )
    ni.send.make()  # over the socketpair's end: never started, driven through `handle`
    yield Loop(a, pa, b, pb, dp, theirs, ni, acct)
    ours.close()
    theirs.close()


def seal(p: Loop, inner: bytes) -> bytes:
    sealed = p.a.encrypt(p.pa, inner, now=1.0)
    assert sealed is not None
    return sealed


def test_the_common_node_runs_the_thread_and_an_exit_policy_runs_in_it(loop: Loop) -> None:
    loop.dp.policy = ExitPolicy(deny=[parse_rule("203.0.113.0/24 udp:53")])
    assert eligible(loop.dp) is None
    loop.loop.reconcile(now=1.0)
    ok, lan, denied = (
        udp4("10.0.0.1", "198.51.100.9", 53),
        udp4("10.0.0.1", "192.168.1.1", 53),
        udp4("10.0.0.1", "203.0.113.9", 53),
    )
    assert loop.loop.thread.handle([seal(loop, p) for p in (ok, lan, denied)], *A_ADDR, 0) == [ok]
    assert dict(loop.loop.thread.drops()) == {"exit_private": 1, "exit_operator": 1}
    # a reload's rules reach the thread at the next reconcile
    loop.dp.policy.set_rules(allow=[parse_rule("192.168.1.0/24")], deny=[])
    loop.loop.reconcile(now=1.0)
    assert loop.loop.thread.handle([seal(loop, p) for p in (lan, denied)], *A_ADDR, 0) == [
        lan,
        denied,
    ]


def test_an_established_session_opens_natively_and_its_counters_reach_the_link(loop: Loop) -> None:
    loop.loop.reconcile(now=1.0)
    assert list(loop.loop.installed) == [loop.pb.current.local_index]
    packet = udp4("10.0.0.1", "203.0.113.9", 53)
    sealed = seal(loop, packet)
    rx_before = loop.pb.rx_bytes
    loop.pb.send_keepalive = None
    assert loop.loop.thread.handle([sealed], *A_ADDR, 0) == [packet]
    assert loop.loop.poll(now=2.0)
    assert loop.pb.rx_bytes == rx_before + len(sealed)
    assert loop.pb.send_keepalive is not None  # data received: the keepalive timer runs
    assert loop.acct.seen == [len(packet)]
    assert loop.dp.counters["native_rx_bytes"] == len(packet)


def test_a_datagram_from_another_endpoint_takes_the_python_path_and_moves_the_session(
    loop: Loop,
) -> None:
    loop.loop.reconcile(now=1.0)
    packet = udp4("10.0.0.1", "203.0.113.9", 53)
    roamed = ("192.0.2.99", 4000)
    assert loop.loop.thread.handle([seal(loop, packet)], *roamed, 0) == []
    assert loop.loop.take(now=1.0) is True  # handed back ("endpoint"), then Python's path
    loop.dp.flush_tun()
    assert tun_packets(loop) == [packet]  # type: ignore[arg-type]
    assert loop.pb.path == Path(UDP, roamed)  # roaming, on the Python path
    loop.loop.reconcile(now=1.0)
    assert [w[1][:2] for w in loop.loop.installed.values()] == [roamed]


def test_a_providers_client_is_served_natively_within_its_credit_window(loop: Loop) -> None:
    assert native is not None
    key = loop.pb.public_key
    credit = ClientCredit(config=AccountingConfig(credit_window=300))
    loop.acct.roles[key] = Role.CLIENT
    loop.acct.gates = CreditGates({key: credit}, native.Credit)
    loop.loop.reconcile(now=1.0)
    assert len(loop.loop.installed) == 1 and len(loop.loop.send.installed) == 1
    packets = [udp4("10.0.0.1", "198.51.100.9", 53, bytes([i]) * 100) for i in range(4)]
    n = len(packets[0])  # 128 bytes each: two fit the 300-byte window, a third passes
    # while owed is within it (as `allowed`), the fourth is held back in the thread
    assert loop.loop.thread.handle([seal(loop, p) for p in packets], *A_ADDR, 0) == packets[:3]
    assert loop.loop.thread.take(10) == []  # nothing for Python to do per packet
    loop.loop.poll(now=2.0)  # the three are charged to the client, whatever the window
    assert credit.pre_hello == 3 * n and loop.acct.seen == []
    # the accountant's drop, not the data path's, under its reason before a hello
    assert loop.acct.held == {"credit_no_session": 1} and credit.current is None
    assert loop.acct.gates.gates[key].left == 300 - 3 * n < 0
    out = loop.loop.send.thread.handle(udp4("10.0.0.2", "10.0.0.1", 53), False, False)
    assert out == [] and loop.loop.send.thread.take(10) == []  # over it: held back
    loop.loop.send.poll(loop.loop.peers_by_id, now=2.0)
    assert loop.acct.held == {"credit_no_session": 2}
    credit.window = 1000  # (a receipt or good standing: more credit)
    loop.loop.poll(now=2.0)
    reply = udp4("10.0.0.2", "10.0.0.1", 53)
    assert len(loop.loop.send.thread.handle(reply, False, False)) == 1
    loop.loop.send.poll(loop.loop.peers_by_id, now=2.0)
    assert credit.pre_hello == 3 * n + len(reply)  # sent bytes are served bytes too
    assert loop.acct.gates.gates[key].left == 1000 - credit.pre_hello
    # after its hello, a packet over the window is `credit_exhausted`, as the accountant
    # counts it for a client with a session
    config = credit.config
    credit.adopt(ServedSession(b"s" * 8, key, b"c" * 32, b"p" * 32, 0, config))
    credit.window = 0
    loop.loop.poll(now=2.0)
    assert loop.loop.send.thread.handle(reply, False, False) == []
    loop.loop.send.poll(loop.loop.peers_by_id, now=2.0)
    assert loop.acct.held == {"credit_no_session": 2, "credit_exhausted": 1}


@pytest.mark.parametrize("role", [Role.CLIENT, Role.PROVIDER])
def test_a_peer_counted_for_receipts_and_an_aged_keypair_are_not_installed(
    loop: Loop, role: Role
) -> None:
    # a provider's client without gates in the threads, or a provider we refused
    loop.acct.roles[loop.pb.public_key] = role
    loop.loop.reconcile(now=1.0)
    assert loop.loop.installed == {} and loop.loop.send.installed == {}
    del loop.acct.roles[loop.pb.public_key]
    loop.loop.reconcile(now=1.0 + REJECT_AFTER_TIME)
    assert loop.loop.installed == {}
    loop.loop.reconcile(now=1.0)
    assert len(loop.loop.installed) == 1


def test_the_send_thread_seals_what_the_peer_opens_and_its_counters_reach_the_link(
    loop: Loop,
) -> None:
    # b sends to a: b's data path routes 10.0.0.1 to a's peer entry (pb)
    loop.loop.reconcile(now=1.0)
    assert list(loop.loop.send.installed) == [loop.loop.ids[loop.pb.public_key]]
    packet = udp4("10.0.0.2", "10.0.0.1", 53)
    before = loop.pb.current.native.send_counter
    out = loop.loop.send.thread.handle(packet, False, False)
    assert [(h, p) for h, p, _, _ in out] == [A_ADDR]
    opened = loop.a.receive_datagram(out[0][2], Path(UDP, B_ADDR), now=1.0)
    assert opened is not None and opened[1][: len(packet)] == packet
    # Python's own sealing takes the next counter of the same session: no reuse
    python_sealed = loop.b.encrypt(loop.pb, packet, now=1.0)
    assert python_sealed is not None and int.from_bytes(python_sealed[8:16], "little") == before + 1
    tx = loop.pb.tx_bytes
    loop.pb.new_handshake = None
    assert loop.loop.send.poll(loop.loop.peers_by_id, now=2.0)
    assert loop.pb.tx_bytes == tx + len(out[0][2])
    assert loop.pb.new_handshake is not None  # data sent: "no reply in 15 s" runs
    assert loop.dp.counters["native_tx_bytes"] == len(packet)


def test_the_send_thread_hands_back_what_python_must_do(loop: Loop) -> None:
    loop.loop.reconcile(now=1.0)
    big = udp4("10.0.0.2", "10.0.0.1", 53, b"x" * 1500)  # over the 1420 path's carry
    syn = bytearray(udp4("10.0.0.2", "10.0.0.1", 53, b"x" * 20))
    syn[9] = 6  # TCP, with the SYN bit where the header puts it
    syn[20 + 13] = 0x02
    assert loop.loop.send.thread.handle(big, False, False) == []
    assert loop.loop.send.thread.handle(bytes(syn), False, False) == []
    assert loop.loop.send.thread.handle(udp4("10.0.0.2", "10.7.7.7", 53), False, False) == []
    assert loop.loop.send.thread.take(10) == [big, bytes(syn)]
    assert dict(loop.loop.send.thread.handed_back()) == {"too_big": 1, "syn": 1}
    assert dict(loop.loop.send.thread.drops()) == {"tun_no_route": 1}
    loop.loop.send.remove(loop.loop.ids[loop.pb.public_key])
    packet = udp4("10.0.0.2", "10.0.0.1", 53)
    assert loop.loop.send.thread.handle(packet, False, False) == []
    assert loop.loop.send.thread.take(10) == [packet]  # no sender: Python's path


def test_a_session_on_a_masked_path_runs_in_the_threads_under_its_listeners_skin(
    loop: Loop,
) -> None:
    # b dials a masked listener at A_ADDR (a's key): both threads carry the session
    masked = MaskedTransport(Counter(), own_public=loop.b.public_key)
    masked.register(A_ADDR, loop.a.public_key)
    skin = MaskedSkin(loop.a.public_key)
    ni = NativeInbound(loop.dp, Udp(), masked)  # type: ignore[arg-type]
    assert native is not None
    ni.thread = native.Inbound(
        sockets=[],
        tun_fd=-1,
        tun_gro=False,
        overlay=loop.dp.control.local_overlay,
        limit=REJECT_AFTER_MESSAGES,
    )
    ni.send.make()
    loop.pb.path = Path(MASKED, A_ADDR)
    ni.reconcile(now=1.0)
    assert [w[1] for w in ni.installed.values()] == [(*A_ADDR, True)]
    packet = udp4("10.0.0.1", "203.0.113.9", 53)
    wire = skin.wrap(seal(loop, packet), rng=SeededRandom("w"))
    assert ni.thread.handle([wire], *A_ADDR, 0) == []  # not from the plain socket
    assert ni.thread.handle([wire], *A_ADDR, 0, True) == [packet]
    # what it sends is masked with the listener's key, and a opens it
    reply = udp4("10.0.0.2", "10.0.0.1", 53)
    [(host, port, sent, _)] = ni.send.thread.handle(reply, False, False)
    assert (host, port) == A_ADDR and sent[:4] != b"\x04\x00\x00\x00"
    link = skin.unwrap(sent)
    assert link is not None
    opened = loop.a.receive_datagram(link, Path(MASKED, B_ADDR), now=1.0)
    assert opened is not None and opened[1][: len(reply)] == reply
    # random bytes on the masked socket are dropped in the thread, counted as the skin's
    # opener counts them, into the data path's drops (which the daemon's masked
    # transport counts into too)
    ni.take(now=1.0)  # the plain-socket copy above: "endpoint", dropped as a replay
    assert ni.thread.handle([bytes(range(64))], *A_ADDR, 0, True) == []
    assert ni.thread.take(10) == []
    ni.poll(now=1.0)
    assert loop.dp.drops["masked_unwrap_failed"] == 1
    # a forgotten listener leaves the threads' keys at the next reconcile
    masked.forget(A_ADDR)
    ni.reconcile(now=1.0)
    assert ni.send.installed == {}  # no key to wrap with: the Python path counts it
    late = skin.wrap(seal(loop, packet), rng=SeededRandom("x"))
    assert ni.thread.handle([late], *A_ADDR, 0, True) == []
    # no key for it (and not listening): dropped as the skin's opener would drop it
    assert ni.thread.take(10) == [] and dict(ni.thread.drops()) == {"masked_unwrap_failed": 1}
