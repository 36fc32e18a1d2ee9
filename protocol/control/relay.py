"""Relay frames: an end-to-end datagram addressed by destination key (docs/protocol/relay.md).

A relay frame is an IPv6/UDP packet between two neighbours' overlay addresses on port
7475 (the control channel's is 7474), carried inside their authenticated link like a
control message but never through the control decoder: frames are as large as the link
carries, and the relay touches only their fixed header.

    IPv6 header   40 bytes   next header 17, hop limit 64, overlay source and destination
    UDP header     8 bytes   ports 7475 -> 7475, length, checksum 0 (RFC 6935: the link's
                             AEAD already covers every byte; the frame never leaves the node)
    kind           1 byte    32 (RELAY_DATA; the relay's block of control types is 32-39)
    version        1 byte    1
    ttl            1 byte    relays left; a relay drops a frame that arrives with 1 or less
    reserved       1 byte    0
    destination   32 bytes   the X25519 key of the end the datagram is for
    source        32 bytes   the X25519 key of the end that sealed it
    datagram       the rest  an ordinary native WireGuard-framed datagram of the two ends'
                             session (a handshake message, a data message, a keepalive)

`build` and `parse` are the whole format; `parse` takes any bytes and returns None for
anything that is not a well-formed frame, never raising. A precompiled `struct` for the
headers: this is the relay's per-packet path.
"""

import struct
from typing import NamedTuple

RELAY_PORT = 7475
RELAY_DATA = 32  # the frame's kind byte: the first of the relay's control types (32-39)
VERSION = 1
DEFAULT_TTL = 8  # relays a frame may cross; Babel's routes are loop-free, this bounds a transient
KEY_SIZE = 32

_HEAD = struct.Struct("!IHBB16s16sHHHHBBBx32s32s")
HEADER_SIZE = _HEAD.size  # 116: IPv6 40, UDP 8, frame header 4, two keys 64
# what a relayed path takes from the inner packets of the link beneath it: the frame's
# headers plus the link's own data header (16) and tag (16) around the end-to-end datagram
OVERHEAD = HEADER_SIZE + 32
_UDP_NEXT_HEADER = 17
_HOP_LIMIT = 64
_VERSION_WORD = 6 << 28
_PORT_BYTES = struct.pack("!H", RELAY_PORT)


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
    """The IPv6/UDP packet of one frame, ready to be sealed for the neighbour."""
    udp_length = HEADER_SIZE - 40 + len(datagram)
    return (
        _HEAD.pack(
            _VERSION_WORD,
            udp_length,
            _UDP_NEXT_HEADER,
            _HOP_LIMIT,
            src_overlay,
            dst_overlay,
            RELAY_PORT,
            RELAY_PORT,
            udp_length,
            0,
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
    UDP to the relay port? The control channel gets everything else."""
    return len(packet) >= 44 and packet[6] == _UDP_NEXT_HEADER and packet[42:44] == _PORT_BYTES


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
        sport,
        dport,
        udp_length,
        _checksum,
        kind,
        version,
        ttl,
        destination,
        source,
    ) = _HEAD.unpack_from(packet)
    if (
        word >> 28 != 6
        or next_header != _UDP_NEXT_HEADER
        or payload_length != len(packet) - 40
        or udp_length != payload_length
        or sport != RELAY_PORT
        or dport != RELAY_PORT
        or kind != RELAY_DATA
        or version != VERSION
    ):
        return None
    return Frame(src, ttl, destination, source, packet[HEADER_SIZE:])
