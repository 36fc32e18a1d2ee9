"""A virtual-time harness for path choice: two native nodes, each a link `Device` with its
control plane and `Paths` (node/core/paths), joined by a fake network with one address
per transport on each side, where a test can block a transport or a provider port.

It does in miniature what node/datapath.py does around the same core objects: every
authenticated packet to the overlay address goes to the control plane, anything else is
"delivered"; after each delivery and each timer the node flushes (the link's events, the
path sets' probes and raced initiations, the link's datagrams). The provider echoes
every data packet back, so a client sending one every 100 ms sees a ping.
"""

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from tidewire.node.core.control_plane import ControlPlane
from tidewire.node.core.paths.manager import Paths
from tidewire.protocol.control.channel import Message, PathProbe, PathProbeReply
from tidewire.protocol.link.device import Device
from tidewire.protocol.link.events import HandshakeCompleted, TimestampSent
from tidewire.protocol.link.peer import Peer, PeerConfig
from tidewire.protocol.link.profile import Mode
from tidewire.protocol.types import MASKED, UDP, Endpoint, Path

from .helpers import SeededRandom, keypair

DELAY = 0.01  # one way


@dataclass
class End:
    name: str
    device: Device
    control: ControlPlane
    paths: Paths
    addrs: dict[str, Endpoint]  # transport -> our address on it
    sim: "PathSim"
    echo: bool = False
    delivered: list[tuple[float, bytes]] = field(default_factory=list)
    handshakes: int = 0
    wakeups: int = 0

    def peer(self) -> Peer:
        return next(iter(self.device.peers.values()))

    def receive(self, data: bytes, path: Path, *, now: float) -> None:
        res = self.device.receive_datagram(data, path, now=now)
        if res is not None:
            peer, plain = res
            if self.control.is_control(plain):
                self.control.receive(peer.public_key, plain[: 40 + _ip6_payload(plain)], now=now)
            else:
                self.delivered.append((now, plain))
                if self.echo:
                    self.send_data(plain, now=now)
        if self.paths.unsettled:
            self.paths.settle(now=now)
        self.flush(now=now)

    def send_data(self, packet: bytes, *, now: float) -> None:
        peer = self.peer()
        out = self.device.encrypt(peer, packet, now=now)
        if out is not None and peer.path is not None:
            self.sim.transmit(self, out, peer.path)
        self.flush(now=now)

    def send_on(self, key: bytes, msg: Message, path: Path) -> None:
        peer = self.device.peers[key]
        now = self.sim.now
        if peer.usable_keypair(now=now) is None:
            return
        out = self.device.encrypt(peer, self.control.packet(key, msg), now=now)
        if out is not None:
            self.sim.transmit(self, out, path)

    def race(self, key: bytes, path: Path) -> None:
        self.device.resend_initiation(self.device.peers[key], path)

    def flush(self, *, now: float) -> None:
        while (event := self.device.next_event()) is not None:
            if isinstance(event, TimestampSent):
                self.paths.initiation_sent(event.public_key, now=now)
            elif isinstance(event, HandshakeCompleted):
                self.handshakes += 1
        self.paths.flush(send=self.send_on, initiate=self.race)
        while self.paths.next_event() is not None:
            pass
        for data, path in self.device.datagrams_to_send():
            self.sim.transmit(self, data, path)

    def timers(self) -> list[float]:
        return [t for t in (self.device.get_timer(), self.paths.get_timer()) if t is not None]

    def fire(self, now: float) -> None:
        self.wakeups += 1
        self.device.handle_timer(now=now)
        self.paths.handle_timer(now=now)
        self.flush(now=now)


def _ip6_payload(packet: bytes) -> int:
    return int.from_bytes(packet[4:6], "big")


Blocked = Callable[[str, Endpoint, Endpoint], bool]  # (transport, src, dst) -> dropped?


class PathSim:
    def __init__(self) -> None:
        self.now = 0.0
        self.queue: list[tuple[float, int, End, bytes, Path]] = []
        self.seq = 0
        self.ends: list[End] = []
        self.blocked: set[str] = set()  # transports dropped in both directions
        self.rules: list[Blocked] = []
        self.log: list[tuple[float, str, Path, int]] = []  # (time, sender, path, size)
        self.ticks: list[tuple[float, float, Callable[[float], None]]] = []

    def end(self, name: str, addrs: dict[str, Endpoint], *, echo: bool = False) -> End:
        private, _ = keypair(name)
        dev = Device(private_key=private, rng=SeededRandom(name), wall_offset=1.7e9)
        paths = Paths(rng=SeededRandom(name + " paths"))
        node = End(name, dev, None, paths, addrs, self, echo=echo)  # type: ignore[arg-type]
        node.control = ControlPlane(public_key=dev.public_key, transmit=lambda k, p: None)
        node.control.register(PathProbe, paths.on_probe)
        node.control.register(PathProbeReply, paths.on_reply)
        self.ends.append(node)
        return node

    def connect(
        self,
        client: End,
        provider: End,
        candidates: list[str],
        *,
        native: bool = True,
        start: str | None = None,
    ) -> None:
        """The client dials the provider's addresses on `candidates` (in order); the
        provider knows no endpoint for the client (it follows)."""
        mode = Mode.NATIVE if native else Mode.WIREGUARD
        paths = [Path(t, provider.addrs[t]) for t in candidates]
        first = Path(start, provider.addrs[start]) if start is not None else paths[0]
        cp = client.device.add_peer(
            PeerConfig(public_key=provider.device.public_key, path=first, mode=mode)
        )
        pp = provider.device.add_peer(PeerConfig(public_key=client.device.public_key, mode=mode))
        if native:
            client.paths.add(cp, paths, start=first)
            provider.paths.add(pp, [])

    def transmit(self, src: End, data: bytes, path: Path) -> None:
        self.log.append((self.now, src.name, path, len(data)))
        dst = next((e for e in self.ends if e.addrs.get(path.transport) == path.address), None)
        if dst is None:  # an address no one holds any more (the other side moved)
            return
        here = src.addrs[path.transport]
        if path.transport in self.blocked:
            return
        if any(rule(path.transport, here, path.address) for rule in self.rules):
            return
        self.seq += 1
        back = Path(path.transport, here)
        heapq.heappush(self.queue, (self.now + DELAY, self.seq, dst, data, back))

    def every(self, interval: float, fn: Callable[[float], None], *, start: float = 0.0) -> None:
        self.ticks.append((start, interval, fn))

    def run_until(self, end: float) -> None:
        while True:
            times = [t for e in self.ends for t in e.timers()]
            if self.queue:
                times.append(self.queue[0][0])
            times += [t for t, _, _ in self.ticks]
            t = min((x for x in times if x <= end), default=None)
            if t is None:
                self.now = end
                return
            self.now = max(self.now, t)
            if self.queue and self.queue[0][0] <= self.now:
                _, _, dst, data, path = heapq.heappop(self.queue)
                dst.receive(data, path, now=self.now)
                continue
            for i, (due, interval, fn) in enumerate(self.ticks):
                if due <= self.now:
                    self.ticks[i] = (due + interval, interval, fn)
                    fn(self.now)
            for e in self.ends:
                if any(x <= self.now for x in e.timers()):
                    e.fire(self.now)

    def sent_by(self, name: str, transport: str) -> list[float]:
        return [t for t, who, p, _ in self.log if who == name and p.transport == transport]


CLIENT_ADDRS = {UDP: ("10.0.0.1", 40000), MASKED: ("10.0.0.1", 40001)}
PROVIDER_ADDRS = {UDP: ("10.0.9.9", 51820), MASKED: ("10.0.9.9", 8443)}


def setup(candidates: list[str] | None = None) -> tuple[PathSim, End, End]:
    sim = PathSim()
    client = sim.end("client", dict(CLIENT_ADDRS))
    provider = sim.end("provider", dict(PROVIDER_ADDRS), echo=True)
    sim.connect(client, provider, candidates or [UDP, MASKED])
    return sim, client, provider


def ping(sim: PathSim, client: End, *, interval: float = 0.1, start: float = 0.0) -> None:
    """The client sends a data packet every `interval` s (the provider echoes it)."""
    sim.every(interval, lambda now: client.send_data(b"ping %.3f" % now, now=now), start=start)


def longest_gap(times: list[float], start: float, end: float) -> float:
    marks = [start, *[t for t in times if start <= t <= end], end]
    return max(b - a for a, b in itertools.pairwise(marks))
