"""UDP GSO batches on real loopback sockets: the receiver gets exactly the datagrams that
were queued, in order, whether they left as GSO runs or one by one."""

import os
import socket
from collections import Counter

import pytest

from tidewire.node.transports.udp_send import BatchSender
from tidewire.protocol.types import UDP, Path


def receive_all(sock: socket.socket, n: int) -> list[bytes]:
    sock.settimeout(2)
    return [sock.recv(65536) for _ in range(n)]


@pytest.mark.parametrize("gso", [True, False])
def test_runs_arrive_as_the_original_datagrams(gso: bool) -> None:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    drops: Counter[str] = Counter()
    sender = BatchSender({socket.AF_INET: tx}, drops)
    sender.gso = gso
    sizes = [1452] * 70 + [600] + [1452] * 5 + [32, 32, 100, 1452, 80]
    sent = [os.urandom(n) for n in sizes]
    endpoint = rx.getsockname()
    for d in sent:
        sender.add(d, endpoint)
    sender.flush()
    assert receive_all(rx, len(sent)) == sent
    assert not drops and sender.gso == gso
    rx.close()
    tx.close()


def test_nothing_pending_after_a_flush() -> None:
    sender = BatchSender({}, Counter())
    sender.add(b"x", ("127.0.0.1", 9))
    sender.flush()
    assert sender.pending == {} and sender.drops["send_no_socket"] == 1


def test_gro_receive_splits_what_gso_sent() -> None:
    from tidewire.node.transports.udp import enable_gro, receive

    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    assert enable_gro([rx])
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender = BatchSender({socket.AF_INET: tx}, Counter())
    sent = (
        [os.urandom(1452) for _ in range(20)]
        + [os.urandom(700)]
        + [os.urandom(64) for _ in range(3)]
    )
    for d in sent:
        sender.add(d, rx.getsockname())
    sender.flush()
    rx.settimeout(2)
    buffer = memoryview(bytearray(65536))
    got: list[bytes] = []
    calls = 0
    while len(got) < len(sent):
        datagrams, addr, _ = receive(rx, buffer)
        assert addr[1] == tx.getsockname()[1]
        got += datagrams
        calls += 1
    assert got == sent
    assert calls < len(sent)  # some arrived coalesced
    rx.close()
    tx.close()


def test_a_forged_datagram_in_a_coalesced_run_costs_only_itself() -> None:
    """A GSO run with one forged datagram in the middle and a truncated tail: after GRO
    the receiving core refuses exactly those two, counted, and delivers every other."""
    from tests.unit.sim import pair
    from tidewire.node.transports.udp import enable_gro, receive

    sim, a, b = pair()
    sim.send(a, b, bytes(84))
    sim.run_until(1.0)  # handshake done
    packets = [bytes([i]) * 84 for i in range(20)]
    wire = [a.device.encrypt(a.peer(b), p, now=1.0) for p in packets]
    assert all(w is not None for w in wire)
    forged = bytearray(wire[7])  # type: ignore[arg-type]
    forged[-1] ^= 1
    wire[7] = bytes(forged)
    wire.append(wire[19][:20])  # type: ignore[index]  # a truncated copy, shorter: ends the run
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    assert enable_gro([rx])
    sender = BatchSender({socket.AF_INET: tx}, Counter())
    for w in wire:
        sender.add(w, rx.getsockname())  # type: ignore[arg-type]
    sender.flush()
    rx.settimeout(2)
    buffer = memoryview(bytearray(65536))
    got: list[bytes] = []
    received = calls = 0
    while received < len(wire):
        datagrams, _, _ = receive(rx, buffer)
        received += len(datagrams)
        calls += 1
        for d in datagrams:
            res = b.device.receive_datagram(d, Path(UDP, a.addr), now=1.0)
            if res is not None:
                got.append(res[1][:84])  # without the padding to 16 bytes
    assert calls < len(wire)  # the run really came coalesced
    assert got == packets[:7] + packets[8:]
    assert b.device.drops["transport_decrypt"] == 1
    assert b.device.drops["transport_short"] == 1
    rx.close()
    tx.close()


def _receive_with_tos(rx: socket.socket, n: int) -> list[tuple[bytes, int]]:
    from tidewire.node.transports.udp import receive

    rx.settimeout(2)
    buffer = memoryview(bytearray(65536))
    got: list[tuple[bytes, int]] = []
    while len(got) < n:
        datagrams, _, ecn = receive(rx, buffer)
        got += [(d, ecn) for d in datagrams]
    return got


@pytest.mark.parametrize("gso", [True, False])
@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_each_datagram_leaves_with_its_ecn_field_in_order(gso: bool, v6: bool) -> None:
    """RFC 6040 encapsulation on real sockets: runs end where the codepoint changes, the
    outer TOS / traffic class carries each datagram's ECN field, the order is kept, and
    the receiving socket (IP_RECVTOS / IPV6_RECVTCLASS, with GRO on) reports it."""
    from tidewire.node.transports.udp import enable_ecn_receive, enable_gro

    fam, host = (socket.AF_INET6, "::1") if v6 else (socket.AF_INET, "127.0.0.1")
    rx = socket.socket(fam, socket.SOCK_DGRAM)
    rx.bind((host, 0))
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    assert enable_ecn_receive([rx]) and enable_gro([rx])
    tx = socket.socket(fam, socket.SOCK_DGRAM)
    drops: Counter[str] = Counter()
    sender = BatchSender({fam: tx}, drops)
    sender.gso = gso
    codes = [0] * 5 + [2] * 10 + [3] * 3 + [2] * 4 + [1] + [0] * 6 + [2]
    sent = [os.urandom(1000) for _ in codes]
    endpoint = rx.getsockname()[:2]
    for d, ecn in zip(sent, codes, strict=True):
        sender.add(d, endpoint, ecn)
    sender.flush()
    assert _receive_with_tos(rx, len(sent)) == list(zip(sent, codes, strict=True))
    assert not drops and sender.codepoints == {}
    rx.close()
    tx.close()


def test_an_endpoint_without_ecn_keeps_no_codepoints() -> None:
    sender = BatchSender({}, Counter())
    sender.add(b"x", ("127.0.0.1", 9))
    sender.add(b"y", ("127.0.0.1", 10), 2)
    sender.add(b"z", ("127.0.0.1", 9))
    assert sender.codepoints == {("127.0.0.1", 10): [2]}  # 9 sent Not-ECT only
