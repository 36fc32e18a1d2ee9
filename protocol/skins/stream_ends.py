"""The two ends of a `tcp` or `tls` connection: masked datagrams in stream frames.

Each end joins the masked skin (protocol/skins/masked.py) and the stream framing
(protocol/skins/stream.py), both keyed by the listener's public key: `frame` wraps a
link datagram and frames it, `feed` deframes and unwraps. The shell's transports
(node/transports/stream.py) own the sockets; these hold no I/O and no clock.

The listener's end gates the connection. Until a frame unwraps under its key, it holds
every byte received (for a fallback web server on the `tls` skin, which must see the
prober's request from its first byte) and refuses, with RemoteProtocolError:

- `stream_preamble` / `stream_frame_size`: the stream framing refuses the bytes;
- `stream_unauthenticated`: the first complete frame does not unwrap (a masked
  handshake is sealed under a key from the listener's public key; a transport
  datagram's protected header unmasks by chance once in 2**32);
- `stream_http`: an HTTP request head ("\\r\\n\\r\\n") arrived before any frame, so a
  fallback can answer at once instead of waiting for the deadline;
- `stream_held_too_much`: more than MAX_HELD bytes without a complete frame.

After that first frame, a frame that does not unwrap is counted (`stream_unwrap_failed`)
and dropped: the bytes of a TCP stream cannot be injected without breaking it, so it is
our peer's bug, not a reason to cut its other traffic. Framing errors still raise, and
the shell closes the connection.

Overhead per link datagram: 2 bytes of masked length plus the masked skin's (padding
to its size distribution for small datagrams, 56 bytes for a handshake); per
connection, the client's 24-byte preamble. The stream carries link datagrams of up to
MAX_FRAME bytes: inner packets up to MAX_INNER (65,503), far above any path MTU, so
a stream skin never lowers the TUN MTU (a config above it is refused).
"""

from collections import Counter

from ..errors import RemoteProtocolError
from ..link.constants import TAG_SIZE, TRANSPORT_HEADER_SIZE
from ..types import RandomSource
from .masked import MaskedSkin
from .stream import MAX_FRAME, PREAMBLE_SIZE, StreamConnection

MAX_HELD = 16 * 1024  # bytes held before the first frame: a masked initiation is < 1.3 KiB
FRAME_OVERHEAD = 2  # the masked length in front of every datagram
PREAMBLE_OVERHEAD = PREAMBLE_SIZE  # once per connection, client to server
MAX_DATAGRAM = MAX_FRAME  # the largest wire datagram one frame carries
# The largest inner packet (the TUN MTU): a frame less WireGuard's header and tag (the
# masked skin adds nothing to a datagram this large).
MAX_INNER = MAX_DATAGRAM - TRANSPORT_HEADER_SIZE - TAG_SIZE


def _unwrap_all(
    skin: MaskedSkin, frames: list[bytes], drops: Counter[str]
) -> list[bytes]:
    out = []
    for wire in frames:
        datagram = skin.unwrap(wire)
        if datagram is None:
            drops["stream_unwrap_failed"] += 1
        else:
            out.append(datagram)
    return out


class StreamClient:
    """The dialling end: it knows the listener's key and speaks first."""

    __slots__ = ("_conn", "_rng", "drops", "skin")

    def __init__(self, skin: MaskedSkin, *, rng: RandomSource, drops: Counter[str]) -> None:
        self.skin = skin
        self._rng = rng
        self.drops = drops
        self._conn = StreamConnection.client(skin.responder_public, rng=rng)

    def frame(self, datagram: bytes) -> bytes:
        """Wire bytes for one link datagram (the first call's start with the preamble)."""
        return self._conn.frame(self.skin.wrap(datagram, rng=self._rng))

    def feed(self, data: bytes) -> list[bytes]:
        """The link datagrams completed by `data`; RemoteProtocolError on a broken stream."""
        return _unwrap_all(self.skin, self._conn.feed(data), self.drops)


class StreamServer:
    """The listening end: refuses the connection until one frame unwraps (see above)."""

    __slots__ = ("_conn", "_rng", "authenticated", "drops", "held", "skin")

    def __init__(self, skin: MaskedSkin, *, rng: RandomSource, drops: Counter[str]) -> None:
        self.skin = skin
        self._rng = rng
        self.drops = drops
        self._conn = StreamConnection.server(skin.responder_public)
        self.authenticated = False
        self.held = b""  # every byte received until authenticated

    def frame(self, datagram: bytes) -> bytes:
        return self._conn.frame(self.skin.wrap(datagram, rng=self._rng))

    def feed(self, data: bytes) -> list[bytes]:
        if self.authenticated:
            return _unwrap_all(self.skin, self._conn.feed(data), self.drops)
        held = self.held + data
        self.held = held
        frames = self._conn.feed(data)  # raises on bytes the framing refuses
        if not frames:
            if len(held) > MAX_HELD:
                raise RemoteProtocolError("stream_held_too_much", f"{len(held)} bytes")
            if b"\r\n\r\n" in held:
                raise RemoteProtocolError("stream_http", "an HTTP request head")
            return []
        first = self.skin.unwrap(frames[0])
        if first is None:
            raise RemoteProtocolError("stream_unauthenticated", "first frame does not unwrap")
        self.authenticated = True
        self.held = b""
        return [first, *_unwrap_all(self.skin, frames[1:], self.drops)]

