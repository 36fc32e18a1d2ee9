"""The UDP reader sheds handshake floods before the link sees them (node/transports/udp.py):
per batch at most 32 handshake messages, at most 2 from one source address; transport
datagrams and other sources' handshakes keep their place. The transport data of one
UDP GRO read reaches the data path as one batch (`Receiver.receive_batch`)."""

import socket
import struct
from collections import Counter

import pytest
import trio

from tidewire.node.transports.udp import UdpTransport
from tidewire.node.transports.udp_send import SOL_UDP, UDP_SEGMENT
from tidewire.protocol.types import Path


class Recorder:
    def __init__(self) -> None:
        self.batches: list[int] = []  # the sizes of the runs handed over together
        self.got: list[tuple[int, str]] = []
        self.shed_count = 0

    def receive(self, data: bytes, path: Path, *, now: float, ecn: int = 0) -> bool:
        self.got.append((data[0] if data else -1, path.address[0]))
        return data[:1] == b"\x04"

    def receive_batch(self, datagrams: list[bytes], path: Path, *, now: float, ecn: int) -> bool:
        self.batches.append(len(datagrams))
        return any([self.receive(d, path, now=now, ecn=ecn) for d in datagrams])

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


async def test_a_gro_read_hands_its_transport_data_over_together_and_sheds_its_handshakes() -> None:
    """One GSO send of 8 transport datagrams and one of 8 initiations reach a GRO socket
    as two reads: the first is one batch, the second passes the handshake budget."""
    drops: Counter[str] = Counter()
    udp = UdpTransport(drops)
    port = udp.bind(0)
    del udp.sockets[socket.AF_INET6]  # the test speaks IPv4 only
    udp.enable_offloads(gso=True, gro=True, ecn=False)
    if not udp.gro:
        pytest.skip("this kernel refuses UDP_GRO")
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dst = ("127.0.0.1", port)
    segment = [(SOL_UDP, UDP_SEGMENT, struct.pack("=H", 148))]
    try:
        sender.sendmsg(
            [b"".join(b"\x04\0\0\0" + bytes([i]) * 144 for i in range(8))], segment, 0, dst
        )
        sender.sendmsg([b"\x01\0\0\0" + bytes(144)] * 8, segment, 0, dst)
    except OSError:
        pytest.skip("this kernel refuses UDP_SEGMENT")
    rec = Recorder()
    with trio.move_on_after(0.3):
        await udp.serve(rec)
    udp.close()
    sender.close()
    assert rec.batches == [8]
    assert [k for k, _ in rec.got] == [4] * 8 + [1] * 2
    assert drops["handshake_shed"] == 6
