"""The UDP transport: its sockets, its readers, receive offload (GRO) and handshake shedding.

`UdpTransport` binds one IPv4 and (where it can) one IPv6 socket on the listen port,
marks them so a default route through the tunnel does not loop, and runs one reader
task per socket: wait for readiness once, drain a batch without blocking, hand each
datagram to the data path with its `Path`. The socket for a destination is the one of
its address family.

Sending, in batches with UDP GSO and a TOS per run, is `BatchSender`'s
(node/transports/udp_send.py).

Handshake shedding: a handshake message costs the link far more than a transport
datagram (mac checks, maybe a Diffie-Hellman), so a flood of them must not take the
batch. Per batch, at most HANDSHAKE_BUDGET handshake messages (first byte 1 or 2, a
pre-filter: the link checks the rest) reach the link, and at most HANDSHAKE_PER_SOURCE
from one source address, so one flooding address cannot crowd out another peer's
handshake; the rest are counted (`handshake_shed`) and dropped unread, though still
counted as load (`Receiver.shed`), so a shed flood still makes the link demand cookies
and apply its rate limiter. Transport data pays one slice comparison for it.

On receive, a socket with UDP_GRO (option 104) may hand over several datagrams
from one sender in one buffer, each `gso_size` long but the last, with the size
in a control message; `receive` splits them again. A sender using GSO (another
tidewire node) then costs one `recvmsg` per run instead of one per datagram, and the
run's transport data messages reach the link together (`Receiver.receive_batch`: one
native call to open them); handshake messages in it still pass the budget one by one.

ECN (RFC 6040, node/core/ecn.py). `add` takes the ECN field the data path copied from
the inner packet (udp_send.py sets it per send). On receive, IP_RECVTOS /
IPV6_RECVTCLASS hand the outer field over with each `recvmsg`; the kernel's GRO never
coalesces datagrams of different TOS, so one field holds for every datagram of a
coalesced buffer. A kernel that refuses the options turns ECN off for that direction
at start (`ecn_send`, `ecn_receive`), and the tunnel then behaves as one without ECN.
"""

import logging
import socket
import struct
from collections import Counter
from collections.abc import Callable

import trio

from tidewire.node.errors import NodeError
from tidewire.node.transports.base import Receiver
from tidewire.node.transports.udp_send import SOL_UDP, TOS, BatchSender
from tidewire.protocol.types import UDP, Endpoint, Path

log = logging.getLogger("tidewire.node")

SOCKET_BUFFER = 4 << 20
BATCH = 256  # datagrams read per wake-up before the batch's output is flushed
HANDSHAKE_BUDGET = 32  # handshake messages per batch handed to the link
HANDSHAKE_PER_SOURCE = 2  # of them, from one source address

UDP_GRO = 104
_GRO_SIZE = struct.Struct("=i")
_CMSG = socket.CMSG_SPACE(_GRO_SIZE.size) + socket.CMSG_SPACE(TOS.size)


def enable_gro(sockets: list[socket.socket]) -> bool:
    """Ask the kernel for coalesced datagrams on every socket, or on none: False if any refuses."""
    return _enable(sockets, lambda s: (SOL_UDP, UDP_GRO))


def enable_ecn_receive(sockets: list[socket.socket]) -> bool:
    """Ask the kernel for each datagram's TOS or traffic class (its ECN field), on every
    socket or on none: False if any refuses."""
    return _enable(sockets, lambda s: _RECV_TOS[s.family])


_RECV_TOS = {
    socket.AF_INET: (socket.IPPROTO_IP, socket.IP_RECVTOS),
    socket.AF_INET6: (socket.IPPROTO_IPV6, socket.IPV6_RECVTCLASS),
}


def _enable(
    sockets: list[socket.socket], option: Callable[[socket.socket], tuple[int, int]]
) -> bool:
    done: list[socket.socket] = []
    for sock in sockets:
        try:
            sock.setsockopt(*option(sock), 1)
        except OSError:
            for s in done:
                s.setsockopt(*option(s), 0)
            return False
        done.append(sock)
    return True


def receive(sock: socket.socket, view: memoryview) -> tuple[list[bytes], tuple[str, int], int]:
    """One `recvmsg` into `view` (64 KiB, reused): the datagrams it carried (several on a
    UDP_GRO socket), copied out, their sender and the ECN field of their outer header
    (0 where the socket reports none)."""
    n, ancdata, _, addr = sock.recvmsg_into([view], _CMSG)
    size = ecn = 0
    for level, kind, value in ancdata:
        if level == SOL_UDP and kind == UDP_GRO and len(value) >= _GRO_SIZE.size:
            size = _GRO_SIZE.unpack_from(value)[0]  # the kernel's native-endian int
        elif level == socket.IPPROTO_IP and kind == socket.IP_TOS and value:
            ecn = value[0] & 0b11  # IPv4: the TOS byte itself
        elif level == socket.IPPROTO_IPV6 and kind == socket.IPV6_TCLASS and len(value) >= 4:
            ecn = TOS.unpack_from(value)[0] & 0b11  # IPv6: the traffic class as an int
    if not size or size >= n:
        return [bytes(view[:n])], (addr[0], addr[1]), ecn
    return [bytes(view[i : min(i + size, n)]) for i in range(0, n, size)], (addr[0], addr[1]), ecn


class Shedding:
    """A batch's handshake budget: HANDSHAKE_BUDGET in all, HANDSHAKE_PER_SOURCE each."""

    def __init__(self) -> None:
        self.budget = HANDSHAKE_BUDGET
        self.sources: dict[str, int] = {}

    def admit(self, host: str) -> bool:
        seen = self.sources.get(host, 0)
        if self.budget <= 0 or seen >= HANDSHAKE_PER_SOURCE:
            return False
        self.budget -= 1
        self.sources[host] = seen + 1
        return True


class UdpTransport:
    """WireGuard framing on plain UDP: the transport of every stock WireGuard peer."""

    name = UDP
    overhead = 0  # bytes a datagram carries beyond WireGuard's framing (node/core/mtu.py)

    def __init__(self, drops: Counter[str]) -> None:
        self.sockets: dict[int, socket.socket] = {}  # by address family
        self.drops = drops
        self.batch = BatchSender(self.sockets, drops)
        self.gro = False  # the sockets may hand over several datagrams per receive
        self.ecn_receive = False  # the sockets report each datagram's outer ECN field
        self.port = 0

    def bind(self, port: int, *, mark: int | None = None) -> int:
        """Listen on `port` (0: a free one) for IPv4 and, where possible, IPv6; mark both
        sockets (with the port itself unless `mark` is given: another transport uses the
        UDP transport's mark) so policy routing can tell our own datagrams apart."""
        s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s4.bind(("0.0.0.0", port))
        except OSError as exc:
            s4.close()
            raise NodeError(f"cannot listen on {self.name} port {port}: {exc.strerror}") from None
        self.port = s4.getsockname()[1]
        self.sockets[socket.AF_INET] = s4
        try:
            s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s6.bind(("::", self.port))
            self.sockets[socket.AF_INET6] = s6
        except OSError as exc:
            log.warning("no IPv6 socket (%s); IPv4 only", exc.strerror)
        for s in self.sockets.values():
            s.setblocking(False)
            for opt, force in ((socket.SO_RCVBUF, 33), (socket.SO_SNDBUF, 32)):  # *BUFFORCE
                try:
                    s.setsockopt(socket.SOL_SOCKET, force, SOCKET_BUFFER)
                except OSError:
                    s.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, self.port if mark is None else mark)
            except OSError:
                log.warning(
                    "cannot mark the %s sockets; a default route through the tunnel will loop",
                    self.name,
                )
        return self.port

    def enable_offloads(self, *, gso: bool, gro: bool, ecn: bool = True) -> None:
        self.batch.gso = gso
        self.gro = gro and enable_gro(list(self.sockets.values()))
        self.ecn_receive = ecn and enable_ecn_receive(list(self.sockets.values()))
        self.batch.ecn_send = ecn

    def add(self, data: bytes, address: Endpoint, ecn: int = 0) -> None:
        self.batch.add(data, address, ecn)

    def send_now(self, data: bytes, address: Endpoint) -> None:
        self.batch.send_now(data, address)

    def flush(self) -> None:
        self.batch.flush()

    async def serve(self, receiver: Receiver) -> None:
        async with trio.open_nursery() as nursery:
            for sock in self.sockets.values():
                nursery.start_soon(self._reader, sock, receiver)

    def opener(self) -> Callable[[bytes, Endpoint], bytes | None] | None:
        """How the reader turns a wire datagram into a link datagram (None if it is not
        one: the opener counts it); None here: plain UDP carries link datagrams as they are."""
        return None

    async def _reader(self, sock: socket.socket, receiver: Receiver) -> None:
        view = memoryview(bytearray(65536))
        open_ = self.opener()
        name = self.name
        while True:
            await trio.lowlevel.wait_readable(sock)
            now = trio.current_time()
            cmsgs = self.gro or self.ecn_receive
            delivered = False
            shedding = Shedding()
            for _ in range(BATCH):
                try:
                    if cmsgs:
                        datagrams, address, ecn = receive(sock, view)
                    else:
                        n, addr = sock.recvfrom_into(view)
                        datagrams, address, ecn = [bytes(view[:n])], (addr[0], addr[1]), 0
                except BlockingIOError:
                    break
                except OSError:
                    self.drops["recv_error"] += 1  # e.g. ICMP errors reported on the socket
                    continue
                delivered |= self.deliver(
                    receiver, datagrams, Path(name, address), ecn, open_, shedding, now=now
                )
            receiver.after_batch(data=delivered)

    def deliver(
        self,
        receiver: Receiver,
        datagrams: list[bytes],
        path: Path,
        ecn: int,
        open_: Callable[[bytes, Endpoint], bytes | None] | None,
        shedding: "Shedding",
        *,
        now: float,
    ) -> bool:
        """The datagrams of one read from `path` to the data path (the native receive
        thread's hand-backs come this way too); True if inner data moved."""
        deliver, deliver_batch = receiver.receive, receiver.receive_batch
        address = path.address
        delivered = False
        run: list[bytes] = []  # transport data of this read, opened in one batch
        for wire in datagrams:
            if open_ is None:
                data = wire
            else:
                opened = open_(wire, address)
                if opened is None:
                    continue
                data = opened
            if data[:1] == b"\x04" and open_ is None and len(datagrams) > 1:
                run.append(data)
                continue
            if run:  # in order: what came before this one first
                delivered |= deliver_batch(run, path, now=now, ecn=ecn)
                run = []
            if b"\x00" < data[:1] < b"\x03" and not shedding.admit(str(address[0])):
                self.drops["handshake_shed"] += 1
                receiver.shed(now=now)  # unread, but it is load all the same
                continue
            if deliver(data, path, now=now, ecn=ecn):
                delivered = True
        if run:
            delivered |= deliver_batch(run, path, now=now, ecn=ecn)
        return delivered

    def close(self) -> None:
        for s in self.sockets.values():
            s.close()
        self.sockets.clear()
