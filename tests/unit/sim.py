"""A virtual-time network for sans-IO Devices: a fake link with seeded loss, duplication,
delay, jitter (which reorders) and targeted drops.

Nothing sleeps: the simulator jumps from one scheduled delivery or device deadline to
the next, calling `receive_datagram` and `handle_timer` with the simulated `now`.
Every datagram put on the link is logged with its time, so tests can assert that a
keepalive left at exactly 10.0 s.
"""

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from tidewire.protocol.link.device import Device
from tidewire.protocol.link.events import Event
from tidewire.protocol.link.messages import message_type
from tidewire.protocol.link.peer import Peer, PeerConfig
from tidewire.protocol.link.profile import Mode
from tidewire.protocol.types import UDP, Endpoint, Path

from .helpers import SeededRandom, keypair


@dataclass
class Sent:
    time: float
    src: Endpoint
    dst: Endpoint
    data: bytes

    @property
    def kind(self) -> int:
        return message_type(self.data)

    @property
    def is_keepalive(self) -> bool:
        return self.kind == 4 and len(self.data) == 32


@dataclass
class Node:
    name: str
    device: Device
    addr: Endpoint
    under_load: bool = False
    received: list[tuple[float, bytes]] = field(default_factory=list)
    events: list[tuple[float, Event]] = field(default_factory=list)

    def peer(self, other: "Node") -> Peer:
        return self.device.peers[other.device.public_key]


DropRule = Callable[[Sent], bool]


class Sim:
    def __init__(
        self,
        *,
        seed: int = 0,
        delay: float = 0.01,
        jitter: float = 0.0,
        loss: float = 0.0,
        duplicate: float = 0.0,
    ) -> None:
        self.now = 0.0
        self.rand = random.Random(seed)
        self.delay, self.jitter, self.loss, self.duplicate = delay, jitter, loss, duplicate
        self.nodes: dict[Endpoint, Node] = {}
        self.queue: list[tuple[float, int, Endpoint, Endpoint, bytes]] = []
        self.seq = 0
        self.log: list[Sent] = []
        self.drop_rules: list[DropRule] = []

    # -- building -----------------------------------------------------------

    def node(self, name: str, addr: Endpoint) -> Node:
        private, _ = keypair(name)
        dev = Device(private_key=private, rng=SeededRandom(name), wall_offset=1_700_000_000.0)
        node = Node(name, dev, addr)
        self.nodes[addr] = node
        return node

    def connect(
        self,
        a: Node,
        b: Node,
        *,
        mode: Mode = Mode.WIREGUARD,
        psk: bytes | None = None,
        a_knows_endpoint: bool = True,
        b_knows_endpoint: bool = False,
        keepalive: int = 0,
    ) -> None:
        a.device.add_peer(
            PeerConfig(
                public_key=b.device.public_key,
                preshared_key=psk,
                endpoint=b.addr if a_knows_endpoint else None,
                mode=mode,
                persistent_keepalive=keepalive,
            )
        )
        b.device.add_peer(
            PeerConfig(
                public_key=a.device.public_key,
                preshared_key=psk,
                endpoint=a.addr if b_knows_endpoint else None,
                mode=mode,
            )
        )

    def move(self, node: Node, addr: Endpoint) -> None:
        del self.nodes[node.addr]
        node.addr = addr
        self.nodes[addr] = node

    # -- traffic ------------------------------------------------------------

    def send(self, src: Node, dst: Node, packet: bytes) -> None:
        peer = src.peer(dst)
        out = src.device.encrypt(peer, packet, now=self.now)
        if out is not None and peer.path is not None:
            self.transmit(src.addr, peer.path.address, out)
        self.flush(src)

    def inject(self, src: Endpoint, dst: Endpoint, data: bytes) -> None:
        """Put a datagram on the link from any address (an attacker, a replay)."""
        self.transmit(src, dst, data)

    def transmit(self, src: Endpoint, dst: Endpoint, data: bytes) -> None:
        sent = Sent(self.now, src, dst, data)
        self.log.append(sent)
        if any(rule(sent) for rule in self.drop_rules):
            return
        if self.loss and self.rand.random() < self.loss:
            return
        copies = 2 if self.duplicate and self.rand.random() < self.duplicate else 1
        for _ in range(copies):
            at = self.now + self.delay + (self.rand.random() * self.jitter if self.jitter else 0.0)
            self.seq += 1
            heapq.heappush(self.queue, (at, self.seq, src, dst, data))

    def flush(self, node: Node) -> None:
        for data, path in node.device.datagrams_to_send():
            self.transmit(node.addr, path.address, data)
        while (event := node.device.next_event()) is not None:
            node.events.append((self.now, event))

    # -- running ------------------------------------------------------------

    def run_until(self, end: float) -> None:
        while True:
            nxt = self.queue[0][0] if self.queue else None
            for node in self.nodes.values():
                t = node.device.get_timer()
                if t is not None and (nxt is None or t < nxt):
                    nxt = t
            if nxt is None or nxt > end:
                self.now = max(self.now, end)
                return
            self.now = max(self.now, nxt)
            while self.queue and self.queue[0][0] <= self.now:
                _, _, src, dst, data = heapq.heappop(self.queue)
                target = self.nodes.get(dst)
                if target is None:
                    continue
                node = target
                res = node.device.receive_datagram(
                    data, Path(UDP, src), now=self.now, under_load=node.under_load
                )
                if res is not None:
                    node.received.append((self.now, res[1]))
                self.flush(node)
            for node in list(self.nodes.values()):
                t = node.device.get_timer()
                if t is not None and t <= self.now:
                    node.device.handle_timer(now=self.now)
                    self.flush(node)

    def sent(self, src: Node | None = None, kind: int | None = None) -> list[Sent]:
        return [
            s
            for s in self.log
            if (src is None or s.src == src.addr) and (kind is None or s.kind == kind)
        ]


def pair(**kw: object) -> tuple[Sim, Node, Node]:
    """A simulator with two connected nodes: a (initiator, knows b's endpoint) and b."""
    sim = Sim(**kw)  # type: ignore[arg-type]
    a = sim.node("alice", ("192.0.2.1", 51820))
    b = sim.node("bob", ("198.51.100.2", 51820))
    sim.connect(a, b)
    return sim, a, b
