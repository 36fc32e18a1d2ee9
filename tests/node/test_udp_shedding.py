"""The UDP reader sheds handshake floods before the link sees them (node/transports/udp.py):
per batch at most 32 handshake messages, at most 2 from one source address; transport
datagrams and other sources' handshakes keep their place."""

import socket
from collections import Counter

import trio

from tidewire.node.transports.udp import UdpTransport
from tidewire.protocol.types import Path


class Recorder:
    def __init__(self) -> None:
        self.got: list[tuple[int, str]] = []
        self.shed_count = 0

    def receive(self, data: bytes, path: Path, *, now: float, ecn: int = 0) -> bool:
        self.got.append((data[0] if data else -1, path.address[0]))
        return data[:1] == b"\x04"

    def shed(self, *, now: float) -> None:
        self.shed_count += 1

    def after_batch(self, *, data: bool) -> None:
        pass


async def test_a_flood_from_one_address_is_shed_and_the_rest_gets_through() -> None:
    drops: Counter[str] = Counter()
    udp = UdpTransport(drops)
    port = udp.bind(0)
    del udp.sockets[socket.AF_INET6]  # the test speaks IPv4 only
    attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    attacker.bind(("127.0.0.1", 0))
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.2", 0))
    dst = ("127.0.0.1", port)
    for i in range(200):  # one batch: 200 initiations, transport data and one other handshake
        attacker.sendto(b"\x01\0\0\0" + bytes(144), dst)
        if i % 20 == 0:
            peer.sendto(b"\x04\0\0\0" + bytes(28), dst)
    peer.sendto(b"\x02\0\0\0" + bytes(88), dst)
    peer.sendto(b"", dst)  # empty: not a handshake, handed on (the link drops it)
    rec = Recorder()
    with trio.move_on_after(0.3):
        await udp.serve(rec)
    udp.close()
    attacker.close()
    peer.close()
    kinds = Counter(rec.got)
    assert kinds[(4, "127.0.0.2")] == 10
    assert kinds[(2, "127.0.0.2")] == 1
    assert kinds[(1, "127.0.0.1")] == 2
    assert kinds[(-1, "127.0.0.2")] == 1
    assert drops["handshake_shed"] == 198
    assert rec.shed_count == 198  # what was shed still counts as load on the link
