"""The UDP transport: its sockets, segmentation offload on send (GSO), receive offload (GRO).

`UdpTransport` binds one IPv4 and (where it can) one IPv6 socket on the listen port,
marks them so a default route through the tunnel does not loop, and runs one reader
task per socket: wait for readiness once, drain a batch without blocking, hand each
datagram to the data path with its `Path`. The socket for a destination is the one of
its address family.

UDP segmentation offload on send (GSO) and receive offload on receive (GRO).

After a TUN batch, the datagrams for one endpoint are grouped into runs of equal
size (a run may end with one shorter datagram) and each run leaves in one
`sendmsg` with the UDP_SEGMENT control message (SOL_UDP 17, option 103): the
kernel cuts it into the original datagrams, so the peer sees exactly what it
would have seen, one system call instead of up to 64. If the kernel or the
socket refuses GSO, it is switched off for good at the first refusal (the run is
resent datagram by datagram), and `tidewire status` shows which is in use.

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
tidewire node) then costs one `recvmsg` per run instead of one per datagram.
"""

import errno
import logging
import socket
import struct
from collections import Counter
from collections.abc import Callable

import trio

from tidewire.node.errors import NodeError
from tidewire.node.transports.base import Receiver
from tidewire.protocol.types import UDP, Endpoint, Path

log = logging.getLogger("tidewire.node")

SOCKET_BUFFER = 4 << 20
BATCH = 256  # datagrams read per wake-up before the batch's output is flushed
HANDSHAKE_BUDGET = 32  # handshake messages per batch handed to the link
HANDSHAKE_PER_SOURCE = 2  # of them, from one source address

SOL_UDP = 17
UDP_SEGMENT = 103
UDP_GRO = 104
_GRO_SIZE = struct.Struct("=i")
_GRO_CMSG = socket.CMSG_SPACE(_GRO_SIZE.size)
MAX_SEGMENTS = 64
MAX_BYTES = 65000
_GSO_SIZE = struct.Struct("=H")
_UNSUPPORTED = {errno.EINVAL, errno.EIO, errno.EOPNOTSUPP, errno.ENOPROTOOPT}


def family(address: Endpoint) -> int:
    """The address family of a socket-style address: hosts are the address strings the
    sockets themselves report, so only an IPv6 one contains a colon."""
    return socket.AF_INET6 if ":" in address[0] else socket.AF_INET


class BatchSender:
    def __init__(self, sockets: dict[int, socket.socket], drops: Counter[str]) -> None:
        self.sockets = sockets
        self.drops = drops
        self.gso = True
        self.pending: dict[Endpoint, list[bytes]] = {}

    def add(self, data: bytes, endpoint: Endpoint) -> None:
        runs = self.pending.get(endpoint)
        if runs is None:
            self.pending[endpoint] = [data]
        else:
            runs.append(data)

    def send_now(self, data: bytes, endpoint: Endpoint) -> None:
        sock = self.sockets.get(family(endpoint))
        if sock is None:
            self.drops["send_no_socket"] += 1
            return
        self._send_one(sock, endpoint, data)

    def flush(self) -> None:
        if not self.pending:
            return
        for endpoint, datagrams in self.pending.items():
            self._send_all(endpoint, datagrams)
        self.pending.clear()

    def _send_all(self, endpoint: Endpoint, datagrams: list[bytes]) -> None:
        sock = self.sockets.get(family(endpoint))
        if sock is None:
            self.drops["send_no_socket"] += len(datagrams)
            return
        i, n = 0, len(datagrams)
        while i < n:
            size = len(datagrams[i])
            j, total = i + 1, size
            while j < n and j - i < MAX_SEGMENTS:
                length = len(datagrams[j])
                if length > size or total + length > MAX_BYTES:
                    break
                total += length
                j += 1
                if length < size:  # a shorter datagram can only end a run
                    break
            if j - i > 1 and self.gso:
                self._send_run(sock, endpoint, datagrams[i:j], size)
            else:
                for d in datagrams[i:j]:
                    self._send_one(sock, endpoint, d)
            i = j

    def _send_run(
        self, sock: socket.socket, endpoint: Endpoint, run: list[bytes], size: int
    ) -> None:
        try:
            sock.sendmsg(
                [b"".join(run)], [(SOL_UDP, UDP_SEGMENT, _GSO_SIZE.pack(size))], 0, endpoint
            )
        except BlockingIOError:
            self.drops["send_buffer_full"] += len(run)
        except OSError as exc:
            if exc.errno in _UNSUPPORTED:
                self.gso = False
                self.drops["udp_gso_refused"] += 1
                for d in run:
                    self._send_one(sock, endpoint, d)
            else:
                self.drops["send_failed"] += len(run)

    def _send_one(self, sock: socket.socket, endpoint: Endpoint, data: bytes) -> None:
        try:
            sock.sendto(data, endpoint)
        except BlockingIOError:
            self.drops["send_buffer_full"] += 1
        except OSError:
            self.drops["send_failed"] += 1


def enable_gro(sockets: list[socket.socket]) -> bool:
    """Ask the kernel for coalesced datagrams on every socket, or on none: False if any refuses."""
    done: list[socket.socket] = []
    for sock in sockets:
        try:
            sock.setsockopt(SOL_UDP, UDP_GRO, 1)
        except OSError:
            for s in done:
                s.setsockopt(SOL_UDP, UDP_GRO, 0)
            return False
        done.append(sock)
    return True


def receive(sock: socket.socket, view: memoryview) -> tuple[list[bytes], tuple[str, int]]:
    """One `recvmsg` on a UDP_GRO socket into `view` (64 KiB, reused): the datagrams it
    carried, copied out, and their sender."""
    n, ancdata, _, addr = sock.recvmsg_into([view], _GRO_CMSG)
    size = 0
    for level, kind, value in ancdata:
        if level == SOL_UDP and kind == UDP_GRO and len(value) >= _GRO_SIZE.size:
            size = _GRO_SIZE.unpack_from(value)[0]  # the kernel's native-endian int
    if not size or size >= n:
        return [bytes(view[:n])], (addr[0], addr[1])
    return [bytes(view[i : min(i + size, n)]) for i in range(0, n, size)], (addr[0], addr[1])


class UdpTransport:
    """WireGuard framing on plain UDP: the transport of every stock WireGuard peer."""

    name = UDP

    def __init__(self, drops: Counter[str]) -> None:
        self.sockets: dict[int, socket.socket] = {}  # by address family
        self.drops = drops
        self.batch = BatchSender(self.sockets, drops)
        self.gro = False  # the sockets may hand over several datagrams per receive
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
            raise NodeError(
                f"cannot listen on {self.name} port {port}: {exc.strerror}"
            ) from None
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

    def enable_offloads(self, *, gso: bool, gro: bool) -> None:
        self.batch.gso = gso
        self.gro = gro and enable_gro(list(self.sockets.values()))

    def add(self, data: bytes, address: Endpoint) -> None:
        self.batch.add(data, address)

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
        deliver = receiver.receive
        open_ = self.opener()
        name = self.name
        while True:
            await trio.lowlevel.wait_readable(sock)
            now = trio.current_time()
            gro = self.gro
            delivered = False
            budget = HANDSHAKE_BUDGET
            sources: dict[str, int] = {}
            for _ in range(BATCH):
                try:
                    if gro:
                        datagrams, address = receive(sock, view)
                    else:
                        n, addr = sock.recvfrom_into(view)
                        datagrams, address = [bytes(view[:n])], (addr[0], addr[1])
                except BlockingIOError:
                    break
                except OSError:
                    self.drops["recv_error"] += 1  # e.g. ICMP errors reported on the socket
                    continue
                path = Path(name, address)
                for wire in datagrams:
                    if open_ is None:
                        data = wire
                    else:
                        opened = open_(wire, address)
                        if opened is None:
                            continue
                        data = opened
                    if b"\x00" < data[:1] < b"\x03":  # an initiation or a response
                        host = address[0]
                        seen = sources.get(host, 0)
                        if budget <= 0 or seen >= HANDSHAKE_PER_SOURCE:
                            self.drops["handshake_shed"] += 1
                            receiver.shed(now=now)  # unread, but it is load all the same
                            continue
                        budget -= 1
                        sources[host] = seen + 1
                    if deliver(data, path, now=now):
                        delivered = True
            receiver.after_batch(data=delivered)

    def close(self) -> None:
        for s in self.sockets.values():
            s.close()
        self.sockets.clear()
