"""Sending on the UDP transport's sockets: batches, segmentation offload (GSO), the outer ECN.

After a TUN batch, the datagrams for one endpoint are grouped into runs of equal
size (a run may end with one shorter datagram) and each run leaves in one
`sendmsg` with the UDP_SEGMENT control message (SOL_UDP 17, option 103): the
kernel cuts it into the original datagrams, so the peer sees exactly what it
would have seen, one system call instead of up to 64. If the kernel or the
socket refuses GSO, it is switched off for good at the first refusal (the run is
resent datagram by datagram), and `tidewire status` shows which is in use.

ECN (RFC 6040, node/core/ecn.py). `add` takes the ECN field the data path copied from
the inner packet; a non-zero one leaves with an IP_TOS (IPv4) or IPV6_TCLASS (IPv6)
control message on its `sendmsg`. A GSO run shares one TOS, so a run also ends where
the codepoint changes (the order of the datagrams is kept). Traffic that is all
Not-ECT pays one test per datagram: codepoints are only kept for an endpoint once a
non-zero one is queued for it. A kernel that refuses a TOS per send turns it off
(`ecn_send`) and the datagram leaves Not-ECT.
"""

import errno
import socket
import struct
from collections import Counter

from tidewire.protocol.types import Endpoint

SOL_UDP = 17
UDP_SEGMENT = 103
TOS = struct.Struct("=i")  # IP_TOS and IPV6_TCLASS as control messages: a native int
_TOS_LEVEL = {
    socket.AF_INET: (socket.IPPROTO_IP, socket.IP_TOS),
    socket.AF_INET6: (socket.IPPROTO_IPV6, socket.IPV6_TCLASS),
}
MAX_SEGMENTS = 64
MAX_BYTES = 65000
_GSO_SIZE = struct.Struct("=H")
_UNSUPPORTED = {errno.EINVAL, errno.EIO, errno.EOPNOTSUPP, errno.ENOPROTOOPT}


def family(address: Endpoint) -> int:
    """The address family of a socket-style address: hosts are the address strings the
    sockets themselves report, so only an IPv6 one contains a colon."""
    return socket.AF_INET6 if ":" in address[0] else socket.AF_INET


class BatchSender:
    """The datagrams of a batch by endpoint, sent at `flush` in GSO runs."""

    def __init__(self, sockets: dict[int, socket.socket], drops: Counter[str]) -> None:
        self.sockets = sockets
        self.drops = drops
        self.gso = True
        self.ecn_send = True  # a TOS control message per send where the codepoint is not 0
        self.pending: dict[Endpoint, list[bytes]] = {}
        self.codepoints: dict[Endpoint, list[int]] = {}  # only endpoints that had ECN

    def add(self, data: bytes, endpoint: Endpoint, ecn: int = 0) -> None:
        runs = self.pending.get(endpoint)
        if runs is None:
            runs = self.pending[endpoint] = [data]
        else:
            runs.append(data)
        if ecn or self.codepoints:
            codes = self.codepoints.get(endpoint)
            if codes is None:
                if not ecn:
                    return
                codes = self.codepoints[endpoint] = [0] * (len(runs) - 1)
            codes.append(ecn)

    def send_now(self, data: bytes, endpoint: Endpoint, ecn: int = 0) -> None:
        sock = self.sockets.get(family(endpoint))
        if sock is None:
            self.drops["send_no_socket"] += 1
            return
        self._send_one(sock, endpoint, data, ecn)

    def flush(self) -> None:
        if not self.pending:
            return
        codepoints = self.codepoints
        for endpoint, datagrams in self.pending.items():
            self._send_all(endpoint, datagrams, codepoints.get(endpoint) if codepoints else None)
        self.pending.clear()
        codepoints.clear()

    def _send_all(
        self, endpoint: Endpoint, datagrams: list[bytes], codes: list[int] | None
    ) -> None:
        sock = self.sockets.get(family(endpoint))
        if sock is None:
            self.drops["send_no_socket"] += len(datagrams)
            return
        i, n = 0, len(datagrams)
        while i < n:
            size = len(datagrams[i])
            ecn = 0 if codes is None else codes[i]
            j, total = i + 1, size
            while j < n and j - i < MAX_SEGMENTS:
                length = len(datagrams[j])
                if length > size or total + length > MAX_BYTES:
                    break
                if codes is not None and codes[j] != ecn:
                    break  # one TOS per run
                total += length
                j += 1
                if length < size:  # a shorter datagram can only end a run
                    break
            if j - i > 1 and self.gso:
                self._send_run(sock, endpoint, datagrams[i:j], size, ecn)
            else:
                for d in datagrams[i:j]:
                    self._send_one(sock, endpoint, d, ecn)
            i = j

    def _tos(self, sock: socket.socket, ecn: int) -> list[tuple[int, int, bytes]]:
        """The control message that sets the outer ECN field (none for Not-ECT)."""
        if not ecn or not self.ecn_send:
            return []
        level, kind = _TOS_LEVEL[sock.family]
        return [(level, kind, TOS.pack(ecn))]

    def _send_run(
        self, sock: socket.socket, endpoint: Endpoint, run: list[bytes], size: int, ecn: int
    ) -> None:
        cmsgs = [(SOL_UDP, UDP_SEGMENT, _GSO_SIZE.pack(size)), *self._tos(sock, ecn)]
        try:
            sock.sendmsg([b"".join(run)], cmsgs, 0, endpoint)
        except BlockingIOError:
            self.drops["send_buffer_full"] += len(run)
        except OSError as exc:
            if exc.errno in _UNSUPPORTED:
                self.gso = False
                self.drops["udp_gso_refused"] += 1
                for d in run:
                    self._send_one(sock, endpoint, d, ecn)
            else:
                self.drops["send_failed"] += len(run)

    def _send_one(self, sock: socket.socket, endpoint: Endpoint, data: bytes, ecn: int) -> None:
        try:
            if ecn and self.ecn_send:
                sock.sendmsg([data], self._tos(sock, ecn), 0, endpoint)
            else:
                sock.sendto(data, endpoint)
        except BlockingIOError:
            self.drops["send_buffer_full"] += 1
        except OSError as exc:
            if ecn and self.ecn_send and exc.errno in _UNSUPPORTED:
                self.ecn_send = False  # the kernel takes no TOS per send: Not-ECT from now on
                self.drops["udp_ecn_refused"] += 1
                self._send_one(sock, endpoint, data, 0)
            else:
                self.drops["send_failed"] += 1
