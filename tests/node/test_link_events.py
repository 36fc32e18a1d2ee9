"""After a batch the data path acts on the link's events (node/link_events.py): an
initiation's TAI64N timestamp goes to the persister (so after a restart the node never
sends one older than its peers have seen) and the initiation leaves on the peer's path."""

import socket

import trio

from tidewire.node.datapath import DataPath
from tidewire.protocol.link.device import Device
from tidewire.protocol.link.peer import PeerConfig
from tidewire.protocol.types import UDP

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
