"""The provider's resolver for its clients: a small caching DNS forwarder on the tunnel.

It listens on the provider's tunnel addresses, port 53, UDP and TCP (RFC 1035
section 4.2; RFC 7766 for TCP: two-byte length frames, several queries per
connection), and nowhere else: the exit policy and the firewall let clients reach
exactly these addresses and port. Each query is checked (node/core/dnsmsg.py),
charged to its client's token bucket (over the limit: dropped and counted),
answered from the cache when it can be, or relayed to the provider's own upstream
resolvers in turn (over UDP, a fresh connected socket and a random ID per query so
an off-path spoofer must guess both; a truncated answer to a TCP client is asked
again over TCP),
UPSTREAM_TIMEOUT each. No upstream answer: SERVFAIL. Hostile input is dropped and
counted in `drops`, never raised. Work is bounded: MAX_INFLIGHT UDP queries being
relayed, MAX_TCP connections, each closed after TCP_IDLE seconds of silence.
"""

import contextlib
import errno
import logging
import os
import socket
import struct
from collections import Counter
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import trio

from tidewire.node.core import dnsmsg
from tidewire.node.core.dnscache import AnswerCache, ClientLimiter

log = logging.getLogger("tidewire.resolver")

PORT = 53
UPSTREAM_TIMEOUT = 2.0  # seconds per upstream before the next is asked
MAX_INFLIGHT = 256
MAX_TCP = 64
TCP_IDLE = 10.0
MAX_UDP = 4096  # bytes read of a UDP datagram; a query is far smaller
IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)  # bind before the address has settled

Upstream = tuple[str, int]


def system_upstreams(resolv_conf: Path = Path("/etc/resolv.conf")) -> list[Upstream]:
    """The nameserver lines of the provider's resolv.conf (resolv.conf(5))."""
    try:
        text = resolv_conf.read_text(errors="replace")
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            try:
                out.append((str(ip_address(parts[1])), PORT))
            except ValueError:
                continue
    return out


class Resolver:
    def __init__(self, *, addresses: list[str], upstreams: list[Upstream], port: int = PORT):
        own = {(a, port) for a in addresses}
        self.addresses = addresses
        self.upstreams = [u for u in upstreams if u not in own]  # never ask ourselves
        self.port = port
        self.cache = AnswerCache()
        self.limiter = ClientLimiter()
        self.drops: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()
        self._inflight = 0
        self._tcp = 0

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        if not self.upstreams:
            log.warning("the resolver has no upstream: set [dns] upstream")
        async with trio.open_nursery() as nursery:
            for addr in self.addresses:
                family = socket.AF_INET6 if ":" in addr else socket.AF_INET
                udp = trio.socket.socket(family, socket.SOCK_DGRAM)
                tcp = trio.socket.socket(family, socket.SOCK_STREAM)
                for sock in (udp, tcp):
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    await sock.bind((addr, self.port))
                tcp.listen(MAX_TCP)
                nursery.start_soon(self._udp_loop, udp, nursery)
                nursery.start_soon(self._tcp_loop, tcp, nursery)
            log.info("resolver on %s port %d", ", ".join(self.addresses), self.port)
            task_status.started()

    # -- the shared path -------------------------------------------------------

    def _admit(self, data: bytes, client: str) -> dnsmsg.Query | None:
        if not self.limiter.allow(client, now=trio.current_time()):
            self.drops["rate_limited"] += 1
            return None
        query = dnsmsg.parse_query(data)
        if query is None:
            self.drops["malformed"] += 1
        return query

    async def _answer(self, data: bytes, query: dnsmsg.Query, *, tcp: bool) -> bytes:
        cached = self.cache.get(query.key, now=trio.current_time())
        if cached is not None:
            self.counts["cached"] += 1
            return dnsmsg.with_id(cached, query.id)
        for upstream in self.upstreams:
            with trio.move_on_after(UPSTREAM_TIMEOUT):
                try:
                    reply = await _ask_udp(upstream, data, query)
                    if tcp and reply is not None and reply[1].truncated:
                        reply = await _ask_tcp(upstream, data, query)
                except (OSError, trio.BrokenResourceError) as exc:
                    log.debug("upstream %s: %s", upstream, exc)
                    reply = None
                if reply is not None:
                    message, response = reply
                    self.cache.put(query.key, message, response, now=trio.current_time())
                    self.counts["forwarded"] += 1
                    return dnsmsg.with_id(message, query.id)
        self.counts["servfail"] += 1
        return dnsmsg.error_response(data, query, dnsmsg.SERVFAIL)

    # -- UDP ---------------------------------------------------------------------

    async def _udp_loop(self, sock: trio.socket.SocketType, nursery: trio.Nursery) -> None:
        while True:
            try:
                data, addr = await sock.recvfrom(MAX_UDP)
            except OSError:  # ICMP errors of earlier replies surface here
                continue
            query = self._admit(data, addr[0])
            if query is None:
                continue
            if self._inflight >= MAX_INFLIGHT:
                self.drops["busy"] += 1
                continue
            self._inflight += 1
            nursery.start_soon(self._udp_one, sock, data, query, addr)

    async def _udp_one(
        self, sock: trio.socket.SocketType, data: bytes, query: dnsmsg.Query, addr: tuple[Any, ...]
    ) -> None:
        try:
            reply = await self._answer(data, query, tcp=False)
            try:
                await sock.sendto(reply, addr)
            except OSError:
                self.drops["send_failed"] += 1
        finally:
            self._inflight -= 1

    # -- TCP ---------------------------------------------------------------------

    async def _tcp_loop(self, listener: trio.socket.SocketType, nursery: trio.Nursery) -> None:
        while True:
            try:
                conn, addr = await listener.accept()
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE):
                    await trio.sleep(0.1)
                continue
            if self._tcp >= MAX_TCP:
                self.drops["busy"] += 1
                conn.close()
                continue
            self._tcp += 1
            nursery.start_soon(self._tcp_conn, conn, addr[0])

    async def _tcp_conn(self, conn: trio.socket.SocketType, client: str) -> None:
        stream = trio.SocketStream(conn)
        try:
            async with stream:
                while True:
                    with trio.move_on_after(TCP_IDLE) as idle:
                        frame = await _read_frame(stream)
                    if idle.cancelled_caught or frame is None:
                        return
                    query = self._admit(frame, client)
                    if query is None:
                        return
                    reply = await self._answer(frame, query, tcp=True)
                    await stream.send_all(struct.pack("!H", len(reply)) + reply)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            self.drops["tcp_error"] += 1
        finally:
            self._tcp -= 1


async def _read_exact(stream: trio.SocketStream, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = await stream.receive_some(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


async def _read_frame(stream: trio.SocketStream) -> bytes | None:
    head = await _read_exact(stream, 2)
    if head is None:
        return None
    (length,) = struct.unpack("!H", head)
    return await _read_exact(stream, length) if length else None


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


async def _ask_udp(
    upstream: Upstream, data: bytes, query: dnsmsg.Query
) -> tuple[bytes, dnsmsg.Response] | None:
    qid = int.from_bytes(os.urandom(2), "big")
    with trio.socket.socket(_family(upstream[0]), socket.SOCK_DGRAM) as sock:
        await sock.connect(upstream)
        await sock.send(dnsmsg.with_id(data, qid))
        while True:  # until an answer to this question, or the caller's timeout
            message = await sock.recv(MAX_UDP * 16)
            response = dnsmsg.parse_response(message, query)
            if response is not None and response.id == qid:
                return message, response


async def _ask_tcp(
    upstream: Upstream, data: bytes, query: dnsmsg.Query
) -> tuple[bytes, dnsmsg.Response] | None:
    qid = int.from_bytes(os.urandom(2), "big")
    sock = trio.socket.socket(_family(upstream[0]), socket.SOCK_STREAM)
    await sock.connect(upstream)
    async with trio.SocketStream(sock) as stream:
        await stream.send_all(struct.pack("!H", len(data)) + dnsmsg.with_id(data, qid))
        message = await _read_frame(stream)
        if message is None:
            return None
        response = dnsmsg.parse_response(message, query)
        if response is None or response.id != qid:
            return None
        return message, response
