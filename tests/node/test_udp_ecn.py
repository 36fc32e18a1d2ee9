"""The UDP reader hands each datagram's outer ECN field to the data path (RFC 6040 on
decapsulation needs it): read with IP_RECVTOS on a real loopback socket, with and
without GRO, and 0 for a transport whose ECN receive is off."""

import socket
from collections import Counter

import pytest
import trio

from tidewire.node.transports.udp import UdpTransport
from tidewire.protocol.types import Path

from .test_masked_transport import Recorder


class EcnRecorder(Recorder):
    def __init__(self) -> None:
        super().__init__()
        self.codepoints: list[int] = []

    def receive(self, data: bytes, path: Path, *, now: float, ecn: int = 0) -> bool:
        self.codepoints.append(ecn)
        return super().receive(data, path, now=now)


@pytest.mark.parametrize("gro", [True, False])
@pytest.mark.parametrize("ecn", [True, False])
async def test_the_reader_passes_the_outer_ecn_field(gro: bool, ecn: bool) -> None:
    udp = UdpTransport(Counter())
    port = udp.bind(0)
    del udp.sockets[socket.AF_INET6]  # the test speaks IPv4 only
    udp.enable_offloads(gso=False, gro=gro, ecn=ecn)
    assert udp.ecn_receive == ecn
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent = []
    for tos in (0x00, 0x02, 0x03, 0xB9):  # Not-ECT, ECT(0), CE, EF with ECT(1)
        sender.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)
        data = b"\x04\0\0\0" + bytes([tos]) * 28
        sender.sendto(data, ("127.0.0.1", port))
        sent.append((data, tos & 3 if ecn else 0))
    rec = EcnRecorder()
    with trio.move_on_after(0.3):
        await udp.serve(rec)
    udp.close()
    sender.close()
    assert list(zip([d for d, _ in rec.got], rec.codepoints, strict=True)) == sent
