"""The `tcp` skin's framing: masked datagrams on a byte stream, lengths masked too.

A connection opens with the client's preamble, then frames in both directions:

    preamble = prefix (8 printable bytes, random) || connection nonce (16 random bytes)
    frame    = (length XOR keystream[2i : 2i + 2]) (2 bytes, big-endian) || datagram

The datagrams are `masked` skin wire datagrams (protocol/skins/masked.py), already
random-looking and padded; the stream adds only the length. Each direction has its own
keystream, ChaCha20 under

    K_dir = BLAKE2s-256(key = BLAKE2s-256("tidewire stream len v1" || S_pub),
                        data = connection nonce || direction byte)

read at the 2-byte position of the frame (block counter = position / 64), so a fresh
nonce per connection gives fresh masks and no two frames of a direction share one.

The prefix is there for the first-packet rules of Wu et al., "How the Great Firewall of
China Detects and Blocks Fully Encrypted Traffic" (USENIX Security 2023, exemptions Ex1-Ex5):
a first packet is exempt from blocking if any of Ex1-Ex5 holds, and six printable bytes
up front satisfy Ex2. `looks_fully_encrypted` implements the published rules so a test
can check the first flight. What this does NOT hide: a printable token followed by
random bytes is itself a shape a censor can learn to match; the length field is not
authenticated (a tampered one yields a datagram that `unwrap` drops, or a frame-size
error); and closing the connection on the first malformed frame, as the shell does on
RemoteProtocolError, is something an active prober can time (a web server would not).

`StreamDeframer.feed` either returns the completed datagrams or raises
RemoteProtocolError and leaves its state exactly as before the call.
"""

from _blake2 import blake2s
from dataclasses import dataclass

from ..errors import LocalProtocolError, RemoteProtocolError
from ..link import aead
from ..types import RandomSource
from .masked import MIN_WIRE_SIZE, derive_key

LEN_LABEL = b"tidewire stream len v1"
PREFIX_SIZE = 8
NONCE_SIZE = 16
PREAMBLE_SIZE = PREFIX_SIZE + NONCE_SIZE
LENGTH_SIZE = 2
MAX_FRAME = 65535  # what two bytes carry; the path MTU keeps real datagrams far below
UPSTREAM = 0  # client to server
DOWNSTREAM = 1  # server to client

# 64 characters, so one random byte picks one without bias.
_TOKEN = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_CHUNK = 1024  # keystream bytes computed at a time: 512 frames per ChaCha20 call
_BLOCKS_PER_CHUNK = _CHUNK // 64
_MAX_CHUNKS = (1 << 32) // _BLOCKS_PER_CHUNK  # ChaCha20's 32-bit block counter


class _Keystream:
    """ChaCha20 keystream of one direction, read by absolute position (pure, cached)."""

    __slots__ = ("_chunk", "_index", "_key")

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._index = -1
        self._chunk = b""

    def mask(self, pos: int) -> int | None:
        """The two keystream bytes at `pos` (even) as an int; None past the end."""
        index, offset = divmod(pos, _CHUNK)
        if index != self._index:
            if index >= _MAX_CHUNKS:
                return None
            # imported here: only a node with a tcp or tls path loads `cryptography`
            # (protocol/link/aead.py; issue 15's memory)
            from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

            aead.use_cryptography()  # loaded now: the link's faster AEAD per packet
            nonce = (index * _BLOCKS_PER_CHUNK).to_bytes(4, "little") + bytes(12)
            self._chunk = (
                Cipher(algorithms.ChaCha20(self._key, nonce), None)
                .encryptor()
                .update(bytes(_CHUNK))
            )
            self._index = index
        return int.from_bytes(self._chunk[offset : offset + LENGTH_SIZE], "big")


def direction_key(responder_public: bytes, nonce: bytes, direction: int) -> bytes:
    if len(nonce) != NONCE_SIZE or direction not in (UPSTREAM, DOWNSTREAM):
        raise LocalProtocolError("stream key: a 16-byte nonce and direction 0 or 1")
    base = derive_key(LEN_LABEL, responder_public)
    return blake2s(nonce + bytes((direction,)), key=base).digest()


def is_printable(byte: int) -> bool:
    return 0x20 <= byte <= 0x7E


def preamble(*, rng: RandomSource) -> bytes:
    """The client's first bytes: a random printable token and the connection nonce."""
    prefix = bytes(_TOKEN[b & 63] for b in rng(PREFIX_SIZE))
    return prefix + rng(NONCE_SIZE)


class StreamFramer:
    """Frames one direction's datagrams."""

    __slots__ = ("_keystream", "_pos")

    def __init__(self, responder_public: bytes, *, nonce: bytes, direction: int) -> None:
        self._keystream = _Keystream(direction_key(responder_public, nonce, direction))
        self._pos = 0

    def frame(self, datagram: bytes) -> bytes:
        n = len(datagram)
        if not MIN_WIRE_SIZE <= n <= MAX_FRAME:
            raise LocalProtocolError(f"stream frame of {n} bytes (allowed {MIN_WIRE_SIZE}-65535)")
        mask = self._keystream.mask(self._pos)
        if mask is None:
            raise LocalProtocolError("stream keystream exhausted: open a new connection")
        self._pos += LENGTH_SIZE
        return (n ^ mask).to_bytes(LENGTH_SIZE, "big") + datagram


class StreamDeframer:
    """Deframes one direction. Without `nonce` (the server side of UPSTREAM) it first
    reads the client's preamble and takes the nonce from it (`nonce` is then set)."""

    __slots__ = ("_buffer", "_direction", "_keystream", "_pos", "_public", "max_frame", "nonce")

    def __init__(
        self,
        responder_public: bytes,
        *,
        direction: int,
        nonce: bytes | None = None,
        max_frame: int = MAX_FRAME,
    ) -> None:
        if not MIN_WIRE_SIZE <= max_frame <= MAX_FRAME:
            raise LocalProtocolError(f"max_frame must be {MIN_WIRE_SIZE}-{MAX_FRAME}")
        derive_key(LEN_LABEL, responder_public)  # checks the key now, not on first feed
        self._public = responder_public
        self._direction = direction
        self.nonce = nonce
        self._keystream = (
            _Keystream(direction_key(responder_public, nonce, direction)) if nonce else None
        )
        self.max_frame = max_frame
        self._pos = 0
        self._buffer = b""

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete frame: never more than the preamble or
        2 + max_frame after a feed returns."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._buffer + data
        at = 0
        keystream, nonce = self._keystream, self.nonce
        if keystream is None:
            if any(not is_printable(b) for b in buffer[:PREFIX_SIZE]):
                raise RemoteProtocolError("stream_preamble", "prefix is not printable")
            if len(buffer) < PREAMBLE_SIZE:
                self._buffer = buffer
                return []
            nonce = buffer[PREFIX_SIZE:PREAMBLE_SIZE]
            keystream = _Keystream(direction_key(self._public, nonce, self._direction))
            at = PREAMBLE_SIZE
        pos = self._pos
        frames: list[bytes] = []
        end = len(buffer)
        while end - at >= LENGTH_SIZE:
            mask = keystream.mask(pos)
            if mask is None:
                raise RemoteProtocolError("stream_exhausted", "keystream used up")
            length = int.from_bytes(buffer[at : at + LENGTH_SIZE], "big") ^ mask
            if not MIN_WIRE_SIZE <= length <= self.max_frame:
                raise RemoteProtocolError("stream_frame_size", f"frame of {length} bytes")
            if end - at - LENGTH_SIZE < length:
                break
            start = at + LENGTH_SIZE
            frames.append(buffer[start : start + length])
            at = start + length
            pos += LENGTH_SIZE
        # Commit only now: a raise above leaves the deframer as it was.
        self._buffer = buffer[at:]
        self._pos = pos
        self._keystream, self.nonce = keystream, nonce
        return frames


@dataclass(slots=True)
class StreamConnection:
    """Both directions of one connection, for either side.

    The client's first `frame` output starts with the preamble, so the preamble and the
    handshake initiation leave in one segment (the "first packet" of the rules). The
    server can frame only once it has read the preamble.
    """

    deframer: StreamDeframer
    framer: StreamFramer | None
    responder_public: bytes
    pending: bytes = b""  # the client's preamble, until its first frame

    @classmethod
    def client(cls, responder_public: bytes, *, rng: RandomSource) -> "StreamConnection":
        first = preamble(rng=rng)
        nonce = first[PREFIX_SIZE:]
        return cls(
            deframer=StreamDeframer(responder_public, direction=DOWNSTREAM, nonce=nonce),
            framer=StreamFramer(responder_public, nonce=nonce, direction=UPSTREAM),
            responder_public=responder_public,
            pending=first,
        )

    @classmethod
    def server(cls, responder_public: bytes) -> "StreamConnection":
        deframer = StreamDeframer(responder_public, direction=UPSTREAM)
        return cls(deframer=deframer, framer=None, responder_public=responder_public)

    def feed(self, data: bytes) -> list[bytes]:
        return self.deframer.feed(data)

    def frame(self, datagram: bytes) -> bytes:
        if self.framer is None:
            if self.deframer.nonce is None:
                raise LocalProtocolError("server stream: nothing to frame before the preamble")
            self.framer = StreamFramer(
                self.responder_public, nonce=self.deframer.nonce, direction=DOWNSTREAM
            )
        out = self.framer.frame(datagram)
        if self.pending:
            out, self.pending = self.pending + out, b""
        return out


def _popcount_average(packet: bytes) -> float:
    return sum(b.bit_count() for b in packet) / len(packet)


def _longest_printable_run(packet: bytes) -> int:
    best = run = 0
    for b in packet:
        run = run + 1 if is_printable(b) else 0
        best = max(best, run)
    return best


_HTTP_METHODS = (b"GET ", b"PUT ", b"POST", b"HEAD")


def looks_fully_encrypted(first_packet: bytes) -> bool:
    """True if the GFW's published rules (Wu et al. 2023, exemptions Ex1-Ex5) would
    treat this first data packet of a TCP flow as fully encrypted, i.e. no exemption holds:

    Ex1 popcount per byte <= 3.4 or >= 4.6; Ex2 the first six bytes printable; Ex3 more
    than half the bytes printable; Ex4 more than 20 contiguous printable bytes; Ex5 the
    start matches TLS ([\\x16-\\x17]\\x03[\\x00-\\x09]) or HTTP (GET/PUT/POST/HEAD).
    """
    if not first_packet:
        return False
    popcount = _popcount_average(first_packet)
    if popcount <= 3.4 or popcount >= 4.6:
        return False  # Ex1
    if len(first_packet) >= 6 and all(is_printable(b) for b in first_packet[:6]):
        return False  # Ex2
    if sum(is_printable(b) for b in first_packet) * 2 > len(first_packet):
        return False  # Ex3
    if _longest_printable_run(first_packet) > 20:
        return False  # Ex4
    head = first_packet[:4]
    if len(head) >= 3 and head[0] in (0x16, 0x17) and head[1] == 0x03 and head[2] <= 0x09:
        return False  # Ex5, TLS
    return head not in _HTTP_METHODS  # Ex5, HTTP
