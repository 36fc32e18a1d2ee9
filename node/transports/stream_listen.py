"""The listening side of a stream transport: sockets, accepting within limits, and the
authentication deadline (the gate itself is protocol/skins/stream_ends.StreamServer).

At most MAX_CONNECTIONS accepted connections at once and MAX_PER_SOURCE from one
address; more are closed at accept (counted before the task starts, so a burst of
accepts cannot overshoot). An accepted connection has AUTH_TIMEOUT seconds, the skin's
own handshake (TLS) included, to send a frame that unwraps; otherwise the transport's
`refuse` decides what it gets (nothing on tcp, a web server on tls) and it is closed.
Only an authenticated connection enters the transport's table, so nothing is ever
sent to one that is not.
"""

import logging
import socket
from collections import Counter
from typing import TYPE_CHECKING, Any

import trio

from tidewire.node.errors import NodeError
from tidewire.node.transports import connection as limits
from tidewire.node.transports.connection import BROKEN, READ_SIZE, Connection, tune
from tidewire.protocol.errors import RemoteProtocolError
from tidewire.protocol.skins.stream_ends import StreamServer
from tidewire.protocol.types import Endpoint

if TYPE_CHECKING:
    from tidewire.node.transports.stream import StreamTransport

log = logging.getLogger("tidewire.node")


class Acceptor:
    """Listening sockets and the connections accepted on them, for one transport."""

    def __init__(self, transport: "StreamTransport") -> None:
        self.transport = transport
        self.sockets: list[trio.socket.SocketType] = []
        self.port = 0
        self.accepted = 0
        self.per_source: Counter[str] = Counter()

    def listen(self, port: int, *, mark: int) -> int:
        """Listen on `port` for IPv4 and, where possible, IPv6; the bound port."""
        name = self.transport.name
        for fam, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
            sock = socket.socket(fam, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if fam == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind((host, port or self.port))
                sock.listen(128)
            except OSError as exc:
                sock.close()
                if fam == socket.AF_INET6:
                    log.warning("no IPv6 %s listener (%s); IPv4 only", name, exc.strerror)
                    break
                raise NodeError(
                    f"cannot listen on {name} port {port}: {exc.strerror}"
                ) from None
            tune(sock, mark=mark)
            sock.setblocking(False)
            self.port = sock.getsockname()[1]
            self.sockets.append(trio.socket.from_stdlib_socket(sock))
        return self.port

    async def serve(self, nursery: trio.Nursery) -> None:
        for sock in self.sockets:
            nursery.start_soon(self._accept, sock, nursery)

    async def _accept(self, listener: trio.socket.SocketType, nursery: trio.Nursery) -> None:
        t = self.transport
        while True:
            try:
                sock, addr = await listener.accept()
            except OSError:
                t.drops[f"{t.name}_accept_failed"] += 1
                await trio.sleep(0.01)  # e.g. out of descriptors: do not spin
                continue
            host = addr[0]
            full = self.accepted >= limits.MAX_CONNECTIONS
            if full or self.per_source[host] >= limits.MAX_PER_SOURCE:
                t.drops[f"{t.name}_too_many_connections"] += 1
                sock.close()
                continue
            self.accepted += 1  # here, not in the task: the next accept may come first
            self.per_source[host] += 1
            nursery.start_soon(self._server, sock, (host, addr[1]))

    async def _server(self, sock: trio.socket.SocketType, address: Endpoint) -> None:
        try:
            await self._serve_accepted(sock, address)
        finally:
            self.accepted -= 1
            self.per_source[address[0]] -= 1
            if not self.per_source[address[0]]:
                del self.per_source[address[0]]

    async def _serve_accepted(self, sock: trio.socket.SocketType, address: Endpoint) -> None:
        t = self.transport
        tune(sock, mark=t.mark)
        end = StreamServer(t.own, rng=t.rng, drops=t.drops)
        conn = Connection(address, end)
        first: list[bytes] = []
        stream: Any = trio.SocketStream(sock)
        refused = ""
        opened = False  # the skin's own handshake (TLS) is done: a refusal may answer
        with trio.move_on_after(limits.AUTH_TIMEOUT) as scope:
            try:
                stream = await t.open_server(stream)
                opened = True
                while not end.authenticated:
                    data = await stream.receive_some(READ_SIZE)
                    if not data:
                        break
                    first = end.feed(bytes(data))
            except RemoteProtocolError as exc:
                refused = exc.reason
            except BROKEN:
                t.drops[f"{t.name}_broken_before_auth"] += 1
                await trio.aclose_forcefully(stream)
                return
        if scope.cancelled_caught:
            refused = "auth_timeout"
        if not end.authenticated:
            t.drops[f"{t.name}_{refused or 'closed_before_auth'}"] += 1
            if refused and opened:
                await t.refuse(stream, end.held)
            await trio.aclose_forcefully(stream)
            return
        conn.stream = stream
        old = t.conns.get(address)
        if old is not None:
            old.scope.cancel()
        t.conns[address] = conn
        t.deliver(conn, first)
        with conn.scope:
            await t.run(conn)

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()
