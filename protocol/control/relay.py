"""Relay frames: an end-to-end datagram addressed by destination key (docs/protocol/relay.md).

A relay frame is an IPv6 packet between two neighbours' overlay addresses with next
header 253 (RFC 3692's number for experiments; RFC 4727 section 3 assigns it), carried
inside their authenticated link like a control message but never through the control
decoder: frames are as large as the link carries, and the relay touches only their
fixed header.

    IPv6 header   40 bytes   next header 253, hop limit 64, overlay source and destination
    kind           1 byte    32 (RELAY_DATA; the relay's block of control types is 32-39)
    version        1 byte    2
    ttl            1 byte    relays left; a relay drops a frame that arrives with 1 or less
    reserved       1 byte    0
    destination   32 bytes   the X25519 key of the end the datagram is for
    source        32 bytes   the X25519 key of the end that sealed it
    datagram       the rest  an ordinary native WireGuard-framed datagram of the two ends'
                             session (a handshake message, a data message, a keepalive)

Version 1 put a UDP header (port 7475) between the IPv6 header and the kind byte: 8
bytes that only named what next header 253 names, and that made a relayed path carry
1272 bytes at the default link MTU of 1420, below IPv6's minimum of 1280 (RFC 8200
section 5). Without them the frame's 108 bytes and the link's 32 around the datagram
(`OVERHEAD`, 140) leave exactly 1280.

`build` and `parse` are the whole format; `parse` takes any bytes and returns None for
anything that is not a well-formed frame, never raising. A precompiled `struct` for the
headers: this is the relay's per-packet path.
"""

import struct
from typing import NamedTuple

RELAY_DATA = 32  # the frame's kind byte: the first of the relay's control types (32-39)
VERSION = 2
DEFAULT_TTL = 8  # relays a frame may cross; Babel's routes are loop-free, this bounds a transient
KEY_SIZE = 32

_HEAD = struct.Struct("!IHBB16s16sBBBx32s32s")
HEADER_SIZE = _HEAD.size  # 108: IPv6 40, frame header 4, two keys 64
# what a relayed path takes from the inner packets of the link beneath it: the frame's
# headers plus the link's own data header (16) and tag (16) around the end-to-end datagram
OVERHEAD = HEADER_SIZE + 32
NEXT_HEADER = 253  # RFC 3692 / RFC 4727: for experimentation; the frame never leaves the link
_HOP_LIMIT = 64
_VERSION_WORD = 6 << 28


class Frame(NamedTuple):
    source_overlay: bytes  # the neighbour that sent this frame (the IPv6 source)
    ttl: int
    destination: bytes
    source: bytes
    datagram: bytes


def build(
    src_overlay: bytes,
    dst_overlay: bytes,
    *,
    ttl: int,
    destination: bytes,
    source: bytes,
    datagram: bytes,
) -> bytes:
    """The IPv6 packet of one frame, ready to be sealed for the neighbour."""
    return (
        _HEAD.pack(
            _VERSION_WORD,
            HEADER_SIZE - 40 + len(datagram),
            NEXT_HEADER,
            _HOP_LIMIT,
            src_overlay,
            dst_overlay,
            RELAY_DATA,
            VERSION,
            ttl,
            destination,
            source,
        )
        + datagram
    )


def is_frame(packet: bytes) -> bool:
    """Cheap: is this decrypted IPv6 packet (already known to be for our overlay address)
    a relay frame's next header? The control channel gets everything else."""
    return len(packet) > 40 and packet[6] == NEXT_HEADER


def parse(packet: bytes) -> Frame | None:
    """The frame in a decrypted packet, or None if it is not a well-formed one."""
    if len(packet) <= HEADER_SIZE:
        return None
    (
        word,
        payload_length,
        next_header,
        _hops,
        src,
        _dst,
        kind,
        version,
        ttl,
        destination,
        source,
    ) = _HEAD.unpack_from(packet)
    if (
        word >> 28 != 6
        or next_header != NEXT_HEADER
        or payload_length != len(packet) - 40
        or kind != RELAY_DATA
        or version != VERSION
    ):
        return None
    return Frame(src, ttl, destination, source, packet[HEADER_SIZE:])
