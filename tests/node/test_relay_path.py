"""A relayed end-to-end session through three real data paths, without root.

C reaches E only through R: C's peer E has the one path relay://R. Socketpairs stand in
for the TUNs and an in-memory wire for the UDP sockets; the links' crypto is real. The
client's session with E is an ordinary native session (handshake and data) whose
datagrams travel in relay frames inside C's link with R, then inside R's link with E.
"""

import socket
import struct
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import ip_network

import pytest
import trio

from tidewire.node.core.relay import RelayConfig, address
from tidewire.node.datapath import DataPath
from tidewire.node.metrics import Registry
from tidewire.node.relay import RelayNode
from tidewire.node.transports.relay import RelayTransport
from tidewire.protocol.link.device import Device
from tidewire.protocol.link.peer import Peer, PeerConfig
from tidewire.protocol.link.profile import Mode
from tidewire.protocol.types import RELAY, UDP, Endpoint, Path

from ..unit.helpers import SeededRandom, keypair
from .test_datapath import Recorder

ADDR = {
    "c": ("192.0.2.1", 51820),
    "r": ("192.0.2.2", 51820),
    "e": ("192.0.2.3", 51820),
    "r2": ("192.0.2.4", 51820),
}
TUNNEL = {"c": "10.9.0.1", "e": "10.9.0.3"}
MARKER = b"relay-marker-0123456789" * 4
_IP = struct.Struct("!BBHHHBBH4s4s")


def udp4(src: str, dst: str, payload: bytes) -> bytes:
    ip = _IP.pack(
        0x45, 0, 28 + len(payload), 0, 0, 64, 17, 0, socket.inet_aton(src), socket.inet_aton(dst)
    )
    return ip + struct.pack("!HHHH", 40000, 9, 8 + len(payload), 0) + payload


@dataclass
class Net:
    """The outer network: datagrams between nodes' UDP addresses, delivered on `run`."""

    queue: list[tuple[Endpoint, Endpoint, bytes]] = field(default_factory=list)
    nodes: dict[Endpoint, "Node"] = field(default_factory=dict)
    seen: dict[str, list[bytes]] = field(default_factory=dict)  # what each node's NIC saw

    def run(self) -> None:
        for _ in range(50):
            if not self.queue:
                return
            batch, self.queue = self.queue, []
            for src, dst, data in batch:
                node = self.nodes.get(dst)
                if node is None:
                    continue
                self.seen.setdefault(node.name, []).append(data)
                node.dp.receive(data, Path(UDP, src), now=trio.current_time())
                node.dp.after_batch()
        raise AssertionError("the network did not settle")


class Port(Recorder):
    """A UDP socket on the in-memory network (the recorder's other verbs do nothing)."""

    def __init__(self, net: Net, own: Endpoint) -> None:
        super().__init__()
        self.net, self.own = net, own

    def add(self, data: bytes, address: Endpoint, ecn: int = 0) -> None:
        self.net.queue.append((self.own, address, data))
        self.net.seen.setdefault(_owner(self.net, self.own), []).append(data)

    def send_now(self, data: bytes, address: Endpoint) -> None:
        self.add(data, address)


def _owner(net: Net, addr: Endpoint) -> str:
    return net.nodes[addr].name


@dataclass
class Node:
    name: str
    device: Device
    dp: DataPath
    relay: RelayNode
    tun: socket.socket
    keep: socket.socket

    def peer(self, other: "Node") -> Peer:
        return self.device.peers[other.device.public_key]

    def tun_packets(self) -> list[bytes]:
        out = []
        while True:
            try:
                out.append(self.tun.recv(65536))
            except BlockingIOError:
                return out


def make(
    net: Net,
    name: str,
    config: RelayConfig,
    *,
    routes: dict[bytes, bytes] | None = None,
    trusted: tuple[bytes, ...] = (),
) -> Node:
    private, _ = keypair("relay-" + name)
    device = Device(private_key=private, rng=SeededRandom(name))
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    theirs.setblocking(False)
    ours.setblocking(False)
    relayed = RelayTransport(Counter())
    dp = DataPath(
        device=device,
        tun_fd=ours.fileno(),
        transports={UDP: Port(net, ADDR[name]), RELAY: relayed},
        policy=None,
        persist_timestamp=lambda key, stamp: None,
    )
    relay = RelayNode(
        dp,
        relayed,
        config=config,
        route=lambda key: (routes or {}).get(key),
        trusted=lambda key: key in trusted,
    )
    node = Node(name, device, dp, relay, theirs, ours)
    net.nodes[ADDR[name]] = node
    return node


def link(a: Node, b: Node, *, endpoint: bool) -> None:
    """Peers in native mode; `a` knows b's address when `endpoint`."""
    a.device.add_peer(
        PeerConfig(
            public_key=b.device.public_key,
            endpoint=ADDR[b.name] if endpoint else None,
            mode=Mode.NATIVE,
        )
    )


@dataclass
class Trio:
    c: Node
    r: Node
    e: Node
    net: Net


@pytest.fixture
def nodes() -> Iterator[Trio]:
    net = Net()
    c = make(net, "c", RelayConfig())
    r = make(net, "r", RelayConfig(enabled=True, pair_cap=40_000))
    e = make(net, "e", RelayConfig())
    link(c, r, endpoint=True)
    link(r, c, endpoint=False)
    link(r, e, endpoint=False)
    link(e, r, endpoint=True)
    # the end-to-end peers: C's only way to E is the relay; E knows no address for C
    c.device.add_peer(
        PeerConfig(
            public_key=e.device.public_key,
            path=Path(RELAY, address(r.device.public_key, e.device.public_key)),
            mode=Mode.NATIVE,
        )
    )
    link(e, c, endpoint=False)
    c.dp.routes.insert(ip_network(TUNNEL["e"] + "/32"), c.peer(e))
    e.dp.routes.insert(ip_network(TUNNEL["c"] + "/32"), e.peer(c))
    yield Trio(c, r, e, net)
    for n in (c, r, e):
        n.tun.close()
        n.keep.close()


def start(t: Trio) -> None:
    """E's keepalive gives R E's address (as E's persistent keepalive would)."""
    now = trio.current_time()
    t.e.device.send_keepalive(t.e.peer(t.r), now=now)
    t.e.dp.flush()
    t.net.run()


def send(t: Trio, src: Node, dst: Node, payload: bytes) -> None:
    packet = udp4(TUNNEL[src.name], TUNNEL[dst.name], payload)
    src.dp.outbound(packet, now=trio.current_time())
    src.dp.after_batch()
    t.net.run()


async def test_a_relayed_session_carries_data_both_ways_and_the_relay_sees_no_plaintext(
    nodes: Trio,
) -> None:
    t = nodes
    start(t)
    send(t, t.c, t.e, MARKER + b"up")
    assert t.e.tun_packets() == [udp4(TUNNEL["c"], TUNNEL["e"], MARKER + b"up")]
    # E learned C's relayed path from the authenticated handshake, and answers on it
    assert t.e.peer(t.c).path == Path(RELAY, address(t.r.device.public_key, t.c.device.public_key))
    send(t, t.e, t.c, MARKER + b"down")
    assert t.c.tun_packets() == [udp4(TUNNEL["e"], TUNNEL["c"], MARKER + b"down")]
    assert t.r.tun_packets() == []
    assert not any(MARKER[:16] in d for d in t.net.seen["r"])
    counters = t.r.relay.core.counters
    assert counters["forwarded"] >= 4  # two handshake messages, two data messages at least
    [pair] = t.r.relay.core.status()
    assert pair["frames"] == counters["forwarded"] and pair["bytes"] == counters["forwarded_bytes"]
    assert t.e.relay.core.counters["delivered"] >= 2 and t.c.relay.core.counters["delivered"] >= 2
    reg = Registry()
    t.r.relay.register(reg)
    text = reg.render()
    assert f'tidewire_relay_events_total{{event="forwarded"}} {counters["forwarded"]}' in text
    assert "tidewire_relay_pair_bytes_total{pair=" in text
    assert str(counters["forwarded_bytes"]) in text


async def test_a_frame_for_an_unknown_destination_is_dropped_and_counted(nodes: Trio) -> None:
    t = nodes
    start(t)
    send(t, t.c, t.e, b"first")  # the links are up
    stranger = keypair("relay-stranger")[1]
    frame = t.c.relay.core.wrap(t.r.device.public_key, stranger, b"\x04" + bytes(40))
    sealed = t.c.device.encrypt(t.c.peer(t.r), frame, now=trio.current_time())
    assert sealed is not None
    before = dict(t.r.relay.core.counters)
    t.r.dp.receive(sealed, Path(UDP, ADDR["c"]), now=trio.current_time())
    assert t.r.relay.core.drops["relay_no_route"] == 1
    assert dict(t.r.relay.core.counters) == before


async def test_the_pair_byte_cap_stops_the_flow_and_is_counted(nodes: Trio) -> None:
    t = nodes
    start(t)
    for _ in range(60):  # 60 x ~1 kB through a 40 kB cap
        send(t, t.c, t.e, MARKER * 10)
    arrived = len(t.e.tun_packets())
    [pair] = t.r.relay.core.status()
    assert pair["bytes"] <= 40_000
    assert pair["drops"]["cap"] == t.r.relay.core.drops["relay_cap"] > 0
    assert 20 < arrived < 60


async def test_two_relays_in_a_row_follow_the_route() -> None:
    """C -> R -> R2 -> E: C names only R; R's route to E goes through its neighbour R2,
    which trusts R to speak for the frame's source; R2's route to C goes back through R
    (the routes Babel would give them), so E answers C the same way back."""
    net = Net()
    c_key, r_key, r2_key, e_key = (keypair("relay-" + n)[1] for n in ("c", "r", "r2", "e"))
    c = make(net, "c", RelayConfig())
    r = make(net, "r", RelayConfig(enabled=True), routes={e_key: r2_key}, trusted=(r2_key,))
    r2 = make(net, "r2", RelayConfig(enabled=True), routes={c_key: r_key}, trusted=(r_key,))
    e = make(net, "e", RelayConfig())
    link(c, r, endpoint=True)
    link(r, c, endpoint=False)
    link(r, r2, endpoint=True)
    link(r2, r, endpoint=False)
    link(r2, e, endpoint=False)
    link(e, r2, endpoint=True)
    c.device.add_peer(
        PeerConfig(public_key=e_key, path=Path(RELAY, address(r_key, e_key)), mode=Mode.NATIVE)
    )
    link(e, c, endpoint=False)
    c.dp.routes.insert(ip_network(TUNNEL["e"] + "/32"), c.peer(e))
    e.dp.routes.insert(ip_network(TUNNEL["c"] + "/32"), e.peer(c))
    t = Trio(c, r, e, net)
    try:
        now = trio.current_time()
        e.device.send_keepalive(e.peer(r2), now=now)  # R2 learns E's address
        e.dp.flush()
        r.device.send_keepalive(r.peer(r2), now=now)  # and R's
        r.dp.flush()
        net.run()
        send(t, c, e, MARKER)
        assert e.tun_packets() == [udp4(TUNNEL["c"], TUNNEL["e"], MARKER)]
        # E sees the frames come from R2, with C's key as their source
        assert e.peer(c).path == Path(RELAY, address(r2_key, c_key))
        send(t, e, c, MARKER + b"back")
        assert c.tun_packets() == [udp4(TUNNEL["e"], TUNNEL["c"], MARKER + b"back")]
        assert r.relay.core.counters["forwarded"] >= 3
        assert r2.relay.core.counters["forwarded"] >= 3
        assert not any(MARKER[:16] in d for who in ("r", "r2") for d in net.seen[who])
    finally:
        for n in (c, r, r2, e):
            n.tun.close()
            n.keep.close()


def udp6(src: str, dst: str, size: int) -> bytes:
    """An IPv6/UDP packet of `size` bytes in all."""
    payload = bytes(size - 48)
    head = struct.pack("!IHBB", 6 << 28, 8 + len(payload), 17, 64)
    head += socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
    return head + struct.pack("!HHHH", 40000, 9, 8 + len(payload), 0) + payload


async def test_ipv6s_minimum_mtu_crosses_a_relayed_path_at_the_default_link_mtu(
    nodes: Trio,
) -> None:
    """1420 - 140 (the frame and the inner link's framing): a 1280-byte IPv6 packet, the
    least any IPv6 link must carry (RFC 8200 section 5), crosses C -> R -> E; one byte
    more gets a "packet too big" of 1280 into C's TUN instead."""
    t = nodes
    c6, e6 = "fd99::2", "fd99::3"
    t.c.dp.routes.insert(ip_network(e6 + "/128"), t.c.peer(t.e))
    t.e.dp.routes.insert(ip_network(c6 + "/128"), t.e.peer(t.c))
    t.c.dp.mtu.set_routers([socket.inet_pton(socket.AF_INET6, c6)])
    start(t)
    send(t, t.c, t.e, b"first")  # the sessions are up
    t.e.tun_packets()
    assert t.c.dp.mtu.carry(RELAY) == 1280
    for size in (1280, 1281):
        t.c.dp.outbound(udp6(c6, e6, size), now=trio.current_time())
        t.c.dp.after_batch()
        t.net.run()
    assert t.e.tun_packets() == [udp6(c6, e6, 1280)]
    [answer] = t.c.tun_packets()
    assert answer[6] == 58 and answer[40] == 2  # ICMPv6 packet too big...
    assert struct.unpack("!I", answer[44:48])[0] == 1280  # ...saying 1280
