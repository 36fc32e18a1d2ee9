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

The listening side (sockets, accept limits, the authentication deadline, what a
refused connection gets) is stream_listen.py; one connection and the limits and timers
with their reasons are connection.py. Every drop is a counter named `<skin>_<reason>`
in the data path's drops.
"""

import logging
import os
import socket
from collections import Counter
from typing import Any

import trio

from tidewire.node.transports import connection as limits
from tidewire.node.transports.base import Receiver
from tidewire.node.transports.connection import BROKEN, READ_SIZE, Connection, tune
from tidewire.node.transports.stream_listen import Acceptor
from tidewire.protocol.errors import LocalProtocolError, RemoteProtocolError
from tidewire.protocol.skins.masked import MaskedSkin
from tidewire.protocol.skins.stream_ends import FRAME_OVERHEAD, MAX_INNER, StreamClient
from tidewire.protocol.types import Endpoint, Path, RandomSource

log = logging.getLogger("tidewire.node")


class StreamTransport:
    """The shared machinery; `TcpTransport` and `TlsTransport` say how a stream opens
    and what a refused connection gets."""

    name = "stream"
    # Bytes a datagram costs beyond its masked wire form (the masked length), and the
    # largest inner packet the skin carries (protocol/skins/stream_ends.py).
    overhead = FRAME_OVERHEAD
    max_inner = MAX_INNER

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
        self.acceptor = Acceptor(self)
        self._nursery: trio.Nursery | None = None
        self._receiver: Receiver | None = None

    # -- configuration --------------------------------------------------------------

    def listen(self, port: int, *, mark: int) -> int:
        """Listen on `port` for IPv4 and, where possible, IPv6."""
        self.mark = mark
        self.port = self.acceptor.listen(port, mark=mark)
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

    def add(self, data: bytes, address: Endpoint, ecn: int = 0) -> None:
        # `ecn` is not carried: a TCP stream has one outer ECN field, the kernel's own
        conn = self.conns.get(address) or self._dial(address)
        if conn is None:
            return
        if conn.queued + len(data) > limits.QUEUE_BYTES:
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
            await self.acceptor.serve(nursery)
            for conn in self._waiting:
                nursery.start_soon(self._client, conn)
            self._waiting.clear()
            await trio.sleep_forever()

    def close(self) -> None:
        self.acceptor.close()

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
        not_before, _ = self._retry.get(address, (0.0, limits.BACKOFF_FIRST))
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
                with trio.fail_after(limits.DIAL_TIMEOUT):
                    await sock.connect(address)
                    conn.stream = await self.open_client(sock, name)
            except (*BROKEN, trio.TooSlowError) as exc:
                sock.close()
                self.drops[f"{self.name}_dial_failed"] += 1
                log.debug("%s://%s:%d: dial failed (%s)", self.name, *address, exc)
                self._ended(conn)
                return
            await self.run(conn)
        if conn.stream is None:  # forgotten while dialling
            sock.close()
            self._ended(conn)

    def _ended(self, conn: Connection) -> None:
        if self.conns.get(conn.address) is conn:
            del self.conns[conn.address]
        if conn.address not in self.listeners:
            return
        _, delay = self._retry.get(conn.address, (0.0, limits.BACKOFF_FIRST))
        if conn.carried:
            self._retry[conn.address] = (0.0, limits.BACKOFF_FIRST)
        else:
            later = trio.current_time() + delay
            self._retry[conn.address] = (later, min(delay * 2, limits.BACKOFF_MAX))

    # -- an open connection ---------------------------------------------------------------

    async def run(self, conn: Connection) -> None:
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
        except BROKEN:
            self.drops[f"{self.name}_send_failed"] += 1
            scope.cancel()

    async def _reader(self, conn: Connection) -> None:
        stream = conn.stream
        assert stream is not None
        end = conn.end
        while True:
            with trio.move_on_after(limits.IDLE_TIMEOUT):
                try:
                    data = await stream.receive_some(READ_SIZE)
                except BROKEN:
                    return
                if not data:
                    return
                try:
                    datagrams = end.feed(bytes(data))  # no copy: it is bytes already
                except RemoteProtocolError as exc:
                    self.drops[f"{self.name}_{exc.reason}"] += 1
                    return
                self.deliver(conn, datagrams)
                continue
            self.drops[f"{self.name}_idle"] += 1
            return

    def deliver(self, conn: Connection, datagrams: list[bytes]) -> None:
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
                if handshakes > limits.HANDSHAKES_PER_READ:
                    self.drops["handshake_shed"] += 1
                    receiver.shed(now=now)
                    continue
            if receiver.receive(data, path, now=now):
                delivered = True
        receiver.after_batch(data=delivered)
