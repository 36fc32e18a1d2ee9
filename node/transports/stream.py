"""What the `tcp` and `tls` transports share: connections carrying stream frames.

A `Path`'s address is the remote ip:port of a connection. A node keeps:
- `listeners`: addresses it dials (a peer with a tcp:// or tls:// endpoint), each with
  the listener's masked skin and, for TLS, the name to send as SNI. The first datagram
  for one dials it; a connection that fails or ends redials on the next datagram after
  a backoff (BACKOFF_FIRST doubling to BACKOFF_MAX; reset once a connection carried a
  datagram), and datagrams in the backoff are dropped (the link retries handshakes);
- `conns`: open connections by remote address, dialled ones and, on a listener,
  accepted ones once their first frame unwrapped under our own key
  (stream_ends.StreamServer). The link replies on the path a datagram came on, so
  replies find the accepted connection by its address.

Sending. `add` frames at once into the connection's queue (at most QUEUE_BYTES; a
datagram that does not fit is dropped and counted before it is framed, so the masked
lengths stay in step), `flush` wakes the writers of the connections written to, and
each writer sends its whole queue in one `send_all`. Sockets have TCP_NODELAY and a
small TCP_NOTSENT_LOWAT, so the kernel holds at most NOTSENT_LOWAT unsent bytes: a
slow path fills the user-space queue, which drops, and the inner TCP sees loss and
backs off instead of a growing buffer (TCP-over-TCP meltdown).

Receiving. One reader per connection: one `receive_some`, then every completed
datagram goes to the data path synchronously and the batch is flushed. A read brings
at most HANDSHAKES_PER_READ handshake messages to the link; more are shed as load.

Limits against probers: at most MAX_CONNECTIONS accepted at once and
MAX_PER_SOURCE from one address (more are closed at accept, counted); an accepted
connection has AUTH_TIMEOUT seconds (TLS handshake included) to send a frame that
unwraps, else it is refused: closed without a byte (`tcp`) or handed to the fallback
web server (`tls`). A connection silent for IDLE_TIMEOUT is closed. Every drop is a
counter named `<skin>_<reason>` in the data path's drops.
"""

import contextlib
import logging
import os
import socket
from collections import Counter
from typing import Any

import trio

from tidewire.node.errors import NodeError
from tidewire.node.transports.base import Receiver
from tidewire.protocol.errors import LocalProtocolError, RemoteProtocolError
from tidewire.protocol.skins.masked import MaskedSkin
from tidewire.protocol.skins.stream_ends import StreamClient, StreamServer
from tidewire.protocol.types import Endpoint, Path, RandomSource

log = logging.getLogger("tidewire.node")

QUEUE_BYTES = 256 * 1024  # per connection, framed, waiting for the writer
NOTSENT_LOWAT = 32 * 1024  # unsent bytes the kernel may hold (TCP_NOTSENT_LOWAT)
TCP_NOTSENT_LOWAT = 25  # linux/tcp.h; the socket module does not name it
READ_SIZE = 256 * 1024
AUTH_TIMEOUT = 5.0  # seconds from accept to a frame that unwraps
DIAL_TIMEOUT = 5.0  # seconds to connect (and, for TLS, finish the handshake)
IDLE_TIMEOUT = 300.0  # beyond WireGuard's REJECT_AFTER_TIME (180 s): a silent session is dead
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
MAX_CONNECTIONS = 256
MAX_PER_SOURCE = 8
HANDSHAKES_PER_READ = 4
_BROKEN = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


def tune(sock: socket.socket | trio.socket.SocketType, *, mark: int) -> None:
    """TCP_NODELAY, a small unsent-bytes limit and the node's mark (a default route
    through the tunnel must not carry the tunnel's own connections)."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with contextlib.suppress(OSError):  # every kernel since 3.12 has it
        sock.setsockopt(socket.IPPROTO_TCP, TCP_NOTSENT_LOWAT, NOTSENT_LOWAT)
    if mark:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)
        except OSError:
            log.warning("cannot mark a stream socket; a default route through the tunnel loops")


class Connection:
    """One connection: its framing end, its stream once open, its send queue."""

    __slots__ = ("address", "carried", "end", "queue", "queued", "scope", "stream", "wake")

    def __init__(self, address: Endpoint, end: StreamClient | StreamServer) -> None:
        self.address = address
        self.end = end
        self.stream: trio.abc.Stream | None = None
        self.queue: list[bytes] = []
        self.queued = 0
        self.wake = trio.Event()
        self.carried = False  # a datagram came in on it
        self.scope = trio.CancelScope()  # cancelled to close it from outside its tasks


class StreamTransport:
    """The shared machinery; `TcpTransport` and `TlsTransport` say how a stream opens
    and what a refused connection gets."""

    name = "stream"

    def __init__(
        self, drops: Counter[str], *, own_public: bytes, rng: RandomSource = os.urandom
    ) -> None:
        self.drops = drops
        self.own = MaskedSkin(own_public)
        self.rng = rng
        self.mark = 0
        self.port = 0
        self.listening = False
        self.listeners: dict[Endpoint, tuple[MaskedSkin, str | None]] = {}
        self.conns: dict[Endpoint, Connection] = {}
        self._skins: dict[bytes, MaskedSkin] = {}
        self._retry: dict[Endpoint, tuple[float, float]] = {}  # not before, next delay
        self._dirty: list[Connection] = []
        self._waiting: list[Connection] = []  # dialled before serve() started
        self._sockets: list[trio.socket.SocketType] = []
        self._nursery: trio.Nursery | None = None
        self._receiver: Receiver | None = None
        self._accepted = 0
        self._per_source: Counter[str] = Counter()

    # -- configuration --------------------------------------------------------------

    def listen(self, port: int, *, mark: int) -> int:
        """Listen on `port` for IPv4 and, where possible, IPv6."""
        self.mark = mark
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
                    log.warning("no IPv6 %s listener (%s); IPv4 only", self.name, exc.strerror)
                    break
                raise NodeError(
                    f"cannot listen on {self.name} port {port}: {exc.strerror}"
                ) from None
            tune(sock, mark=mark)
            sock.setblocking(False)
            self.port = sock.getsockname()[1]
            self._sockets.append(trio.socket.from_stdlib_socket(sock))
        self.listening = True
        return self.port

    def register(
        self, address: Endpoint, listener_public: bytes, *, server_name: str | None = None
    ) -> None:
        """We dial `address`; its listener's key is `listener_public`."""
        skin = self._skins.get(listener_public)
        if skin is None:
            skin = self._skins[listener_public] = MaskedSkin(listener_public)
        self.listeners[address] = (skin, server_name)

    def forget(self, address: Endpoint) -> None:
        self.listeners.pop(address, None)
        self._retry.pop(address, None)
        conn = self.conns.pop(address, None)
        if conn is not None:
            conn.scope.cancel()

    # -- the Transport interface --------------------------------------------------------

    def add(self, data: bytes, address: Endpoint) -> None:
        conn = self.conns.get(address) or self._dial(address)
        if conn is None:
            return
        if conn.queued + len(data) > QUEUE_BYTES:
            self.drops[f"{self.name}_queue_full"] += 1
            return
        try:
            wire = conn.end.frame(data)
        except LocalProtocolError:
            self.drops[f"{self.name}_unframeable"] += 1
            return
        if not conn.queue:
            self._dirty.append(conn)
        conn.queue.append(wire)
        conn.queued += len(wire)

    def send_now(self, data: bytes, address: Endpoint) -> None:
        self.add(data, address)
        self.flush()

    def flush(self) -> None:
        for conn in self._dirty:
            conn.wake.set()
        self._dirty.clear()

    async def serve(self, receiver: Receiver) -> None:
        self._receiver = receiver
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for sock in self._sockets:
                nursery.start_soon(self._accept, sock)
            for conn in self._waiting:
                nursery.start_soon(self._client, conn)
            self._waiting.clear()
            await trio.sleep_forever()

    def close(self) -> None:
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()

    # -- what the skins differ in -----------------------------------------------------

    async def open_client(self, sock: trio.socket.SocketType, server_name: str | None) -> Any:
        """The stream on a connected socket (TLS: after the handshake)."""
        return trio.SocketStream(sock)

    async def open_server(self, stream: trio.SocketStream) -> Any:
        return stream

    async def refuse(self, stream: trio.abc.Stream, held: bytes) -> None:
        """What a connection that did not authenticate gets: here, nothing."""

    # -- dialling -------------------------------------------------------------------------

    def _dial(self, address: Endpoint) -> Connection | None:
        listener = self.listeners.get(address)
        if listener is None:
            self.drops[f"{self.name}_no_connection"] += 1
            return None
        not_before, _ = self._retry.get(address, (0.0, BACKOFF_FIRST))
        if trio.current_time() < not_before:
            self.drops[f"{self.name}_dial_backoff"] += 1
            return None
        conn = Connection(address, StreamClient(listener[0], rng=self.rng, drops=self.drops))
        self.conns[address] = conn
        if self._nursery is None:
            self._waiting.append(conn)
        else:
            self._nursery.start_soon(self._client, conn)
        return conn

    async def _client(self, conn: Connection) -> None:
        address = conn.address
        name = self.listeners.get(address, (None, None))[1]
        fam = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        sock = trio.socket.socket(fam, socket.SOCK_STREAM)
        with conn.scope:
            try:
                tune(sock, mark=self.mark)
                with trio.fail_after(DIAL_TIMEOUT):
                    await sock.connect(address)
                    conn.stream = await self.open_client(sock, name)
            except (*_BROKEN, trio.TooSlowError) as exc:
                sock.close()
                self.drops[f"{self.name}_dial_failed"] += 1
                log.debug("%s://%s:%d: dial failed (%s)", self.name, *address, exc)
                self._ended(conn)
                return
            await self._run(conn)
        if conn.stream is None:  # forgotten while dialling
            sock.close()
            self._ended(conn)

    def _ended(self, conn: Connection) -> None:
        if self.conns.get(conn.address) is conn:
            del self.conns[conn.address]
        if conn.address not in self.listeners:
            return
        _, delay = self._retry.get(conn.address, (0.0, BACKOFF_FIRST))
        if conn.carried:
            self._retry[conn.address] = (0.0, BACKOFF_FIRST)
        else:
            self._retry[conn.address] = (trio.current_time() + delay, min(delay * 2, BACKOFF_MAX))

    # -- accepting ------------------------------------------------------------------------

    async def _accept(self, listener: trio.socket.SocketType) -> None:
        assert self._nursery is not None
        while True:
            try:
                sock, addr = await listener.accept()
            except OSError:
                self.drops[f"{self.name}_accept_failed"] += 1
                await trio.sleep(0.01)  # e.g. out of descriptors: do not spin
                continue
            host = addr[0]
            if self._accepted >= MAX_CONNECTIONS or self._per_source[host] >= MAX_PER_SOURCE:
                self.drops[f"{self.name}_too_many_connections"] += 1
                sock.close()
                continue
            self._accepted += 1  # here, not in the task: the next accept may come first
            self._per_source[host] += 1
            self._nursery.start_soon(self._server, sock, (host, addr[1]))

    async def _server(self, sock: trio.socket.SocketType, address: Endpoint) -> None:
        try:
            await self._serve_accepted(sock, address)
        finally:
            self._accepted -= 1
            self._per_source[address[0]] -= 1
            if not self._per_source[address[0]]:
                del self._per_source[address[0]]

    async def _serve_accepted(self, sock: trio.socket.SocketType, address: Endpoint) -> None:
        tune(sock, mark=self.mark)
        end = StreamServer(self.own, rng=self.rng, drops=self.drops)
        conn = Connection(address, end)
        first: list[bytes] = []
        stream: Any = trio.SocketStream(sock)
        refused = ""
        opened = False  # the skin's own handshake (TLS) is done: a refusal may answer
        with trio.move_on_after(AUTH_TIMEOUT) as scope:
            try:
                stream = await self.open_server(stream)
                opened = True
                while not end.authenticated:
                    data = await stream.receive_some(READ_SIZE)
                    if not data:
                        break
                    first = end.feed(bytes(data))
            except RemoteProtocolError as exc:
                refused = exc.reason
            except _BROKEN:
                self.drops[f"{self.name}_broken_before_auth"] += 1
                await trio.aclose_forcefully(stream)
                return
        if scope.cancelled_caught:
            refused = "auth_timeout"
        if not end.authenticated:
            self.drops[f"{self.name}_{refused or 'closed_before_auth'}"] += 1
            if refused and opened:
                await self.refuse(stream, end.held)
            await trio.aclose_forcefully(stream)
            return
        conn.stream = stream
        old = self.conns.get(address)
        if old is not None:
            old.scope.cancel()
        self.conns[address] = conn
        self._deliver(conn, first)
        with conn.scope:
            await self._run(conn)

    # -- an open connection ---------------------------------------------------------------

    async def _run(self, conn: Connection) -> None:
        stream = conn.stream
        assert stream is not None
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._writer, conn, nursery.cancel_scope)
                await self._reader(conn)
                nursery.cancel_scope.cancel()
        finally:
            self._ended(conn)
            await trio.aclose_forcefully(stream)

    async def _writer(self, conn: Connection, scope: trio.CancelScope) -> None:
        stream = conn.stream
        assert stream is not None
        try:
            while True:
                if not conn.queue:
                    await conn.wake.wait()
                    conn.wake = trio.Event()
                    continue
                data = b"".join(conn.queue)
                conn.queue.clear()
                conn.queued = 0
                await stream.send_all(data)
        except _BROKEN:
            self.drops[f"{self.name}_send_failed"] += 1
            scope.cancel()

    async def _reader(self, conn: Connection) -> None:
        stream = conn.stream
        assert stream is not None
        end = conn.end
        while True:
            with trio.move_on_after(IDLE_TIMEOUT):
                try:
                    data = await stream.receive_some(READ_SIZE)
                except _BROKEN:
                    return
                if not data:
                    return
                try:
                    datagrams = end.feed(bytes(data))  # no copy: it is bytes already
                except RemoteProtocolError as exc:
                    self.drops[f"{self.name}_{exc.reason}"] += 1
                    return
                self._deliver(conn, datagrams)
                continue
            self.drops[f"{self.name}_idle"] += 1
            return

    def _deliver(self, conn: Connection, datagrams: list[bytes]) -> None:
        receiver = self._receiver
        if receiver is None or not datagrams:
            return
        conn.carried = True
        now = trio.current_time()
        path = Path(self.name, conn.address)
        delivered = False
        handshakes = 0
        for data in datagrams:
            if b"\x00" < data[:1] < b"\x03":  # an initiation or a response
                handshakes += 1
                if handshakes > HANDSHAKES_PER_READ:
                    self.drops["handshake_shed"] += 1
                    receiver.shed(now=now)
                    continue
            if receiver.receive(data, path, now=now):
                delivered = True
        receiver.after_batch(data=delivered)
