"""After a batch the data path acts on the link's events (node/link_events.py): an
initiation's TAI64N timestamp goes to the persister (so after a restart the node never
sends one older than its peers have seen) and the initiation leaves on the peer's path.
The outbox is drained until empty, whatever a send queues, within one bound."""

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import trio

from tidewire.node import link_events
from tidewire.node.datapath import DataPath
from tidewire.protocol.link.device import Device
from tidewire.protocol.link.peer import Peer, PeerConfig
from tidewire.protocol.types import UDP, Endpoint, Path

from ..unit.helpers import SeededRandom, keypair
from .test_datapath import A_ADDR, Recorder


def test_flush_persists_the_initiation_timestamp_and_sends_the_initiation() -> None:
    _, pub_a = keypair("events-a")
    kb, _ = keypair("events-b")
    b = Device(private_key=kb, rng=SeededRandom("b"))
    pa = b.add_peer(PeerConfig(public_key=pub_a, endpoint=A_ADDR))
    saved: list[tuple[bytes, bytes]] = []
    wire = Recorder()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    dp = DataPath(
        device=b,
        tun_fd=ours.fileno(),
        transports={UDP: wire},
        policy=None,
        persist_timestamp=lambda key, stamp: saved.append((key, stamp)),
    )

    async def main() -> None:
        b.initiate(pa, now=trio.current_time())
        dp.flush()

    try:
        trio.run(main)
    finally:
        ours.close()
        theirs.close()
    assert [(key, len(stamp)) for key, stamp in saved] == [(pub_a, 12)]
    assert [(data[0], addr) for data, addr in wire.sent] == [(1, A_ADDR)]  # type 1: initiation


@contextmanager
def datapath(device: Device, wire: object) -> Iterator[DataPath]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        yield DataPath(
            device=device,
            tun_fd=ours.fileno(),
            transports={UDP: wire},  # type: ignore[dict-item]
            policy=None,
            persist_timestamp=lambda key, stamp: None,
        )
    finally:
        ours.close()
        theirs.close()


@dataclass
class RelayChain(Recorder):
    """Each send to hop i stands for what a relayed send does (node/transports/relay.py):
    it seals for the next relay, hop i + 1, with no session yet, which stages the packet
    and queues a handshake initiation in the link's outbox."""

    device: Device | None = None
    hops: list[Peer] = field(default_factory=list)

    def send_now(self, data: bytes, address: Endpoint) -> None:
        super().send_now(data, address)
        assert self.device is not None
        i = [p.config.endpoint for p in self.hops].index(address)
        if i + 1 < len(self.hops):
            self.device.encrypt(self.hops[i + 1], b"inner", now=trio.current_time())


def test_a_relay_chain_deeper_than_three_flushes_in_one_go() -> None:
    kb, _ = keypair("chain-b")
    b = Device(private_key=kb, rng=SeededRandom("chain"))
    hops = []
    for i in range(6):
        _, pub = keypair(f"chain-hop-{i}")
        hops.append(b.add_peer(PeerConfig(public_key=pub, endpoint=(f"192.0.2.{i + 1}", 51820))))
    wire = RelayChain(device=b, hops=hops)

    async def main() -> None:
        b.encrypt(hops[0], b"inner", now=trio.current_time())
        dp.flush()

    with datapath(b, wire) as dp:
        trio.run(main)
    # one initiation (type 1) per hop, each queued by the send before it, in one flush
    assert [(data[0], addr) for data, addr in wire.sent] == [
        (1, (f"192.0.2.{i + 1}", 51820)) for i in range(6)
    ]
    assert dp.counters["outbox_flush_bound"] == 0


def test_a_send_that_always_queues_another_stops_at_the_bound_and_is_counted() -> None:
    kb, _ = keypair("loop-b")
    b = Device(private_key=kb, rng=SeededRandom("loop"))
    path = Path(UDP, A_ADDR)
    # an outbox that never empties: 64 datagrams every time it is asked
    b.datagrams_to_send = lambda: [(b"x", path)] * 64  # type: ignore[method-assign]
    wire = Recorder()
    with datapath(b, wire) as dp:
        trio.run(_flush, dp)
        assert len(wire.sent) == link_events.FLUSH_BOUND
        assert dp.counters["outbox_flush_bound"] == 1


async def _flush(dp: DataPath) -> None:
    dp.flush()
