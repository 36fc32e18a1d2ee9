"""One connection of a stream skin (tcp, tls), its limits, and how its socket is tuned.

The constants are the stream transports' limits and timers, with their reasons;
stream.py and stream_listen.py read them from here.
"""

import contextlib
import logging
import socket

import trio

from tidewire.protocol.skins.stream_ends import StreamClient, StreamServer
from tidewire.protocol.types import Endpoint

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
BROKEN = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


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
