"""UDP segmentation offload on send (GSO) and receive offload on receive (GRO).

After a TUN batch, the datagrams for one endpoint are grouped into runs of equal
size (a run may end with one shorter datagram) and each run leaves in one
`sendmsg` with the UDP_SEGMENT control message (SOL_UDP 17, option 103): the
kernel cuts it into the original datagrams, so the peer sees exactly what it
would have seen, one system call instead of up to 64. If the kernel or the
socket refuses GSO, it is switched off for good at the first refusal (the run is
resent datagram by datagram), and `tidewire status` shows which is in use.

On receive, a socket with UDP_GRO (option 104) may hand over several datagrams
from one sender in one buffer, each `gso_size` long but the last, with the size
in a control message; `receive` splits them again. A sender using GSO (another
tidewire node) then costs one `recvmsg` per run instead of one per datagram.
"""

import errno
import socket
import struct
from collections import Counter

from tidewire.protocol.types import Endpoint

SOL_UDP = 17
UDP_SEGMENT = 103
UDP_GRO = 104
_GRO_SIZE = struct.Struct("=i")
_GRO_CMSG = socket.CMSG_SPACE(_GRO_SIZE.size)
MAX_SEGMENTS = 64
MAX_BYTES = 65000
_GSO_SIZE = struct.Struct("=H")
_UNSUPPORTED = {errno.EINVAL, errno.EIO, errno.EOPNOTSUPP, errno.ENOPROTOOPT}


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
        sock = self.sockets.get(socket.AF_INET6 if ":" in endpoint[0] else socket.AF_INET)
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
        sock = self.sockets.get(socket.AF_INET6 if ":" in endpoint[0] else socket.AF_INET)
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
