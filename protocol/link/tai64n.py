"""TAI64N timestamps for handshake initiations (whitepaper section 5.4.2).

12 bytes: seconds as a big-endian 64-bit TAI64 label (2^62 + 10 + Unix time, as
wireguard-go's tai64n package writes it) and nanoseconds as a big-endian 32-bit
integer. Like wireguard-go, the nanoseconds are rounded down to a multiple of
2^24 ns (about 16.8 ms) so the stamp does not leak a precise clock.

Routers without a real-time clock boot with a time in the past, so the caller
passes in the last stamp it persisted and `next_stamp` never returns one that
is not greater: a responder rejects an initiation that is not strictly newer.
"""

import struct

from .constants import TIMESTAMP_SIZE

BASE = (1 << 62) + 10
WHITENER_MASK = (1 << 24) - 1
_TAI = struct.Struct(">QI")


def stamp(wall: float) -> bytes:
    """The TAI64N label of a Unix wall-clock time (seconds, float)."""
    secs = int(wall // 1)
    nanos = round((wall - secs) * 1e9)
    if nanos >= 1_000_000_000:
        secs, nanos = secs + 1, nanos - 1_000_000_000
    return _TAI.pack(BASE + secs, nanos & ~WHITENER_MASK)


def stamp_ns(wall_ns: int) -> bytes:
    secs, nanos = divmod(wall_ns, 1_000_000_000)
    return _TAI.pack(BASE + secs, nanos & ~WHITENER_MASK)


def increment(ts: bytes) -> bytes:
    """The smallest whitened stamp strictly after `ts`."""
    secs, nanos = _TAI.unpack(ts)
    nanos = (nanos & ~WHITENER_MASK) + WHITENER_MASK + 1
    if nanos >= 1_000_000_000:
        secs, nanos = secs + 1, 0
    return _TAI.pack(secs, nanos)


def next_stamp(wall: float, last: bytes | None) -> bytes:
    """A stamp for `wall` that is strictly after `last` (None: nothing sent yet)."""
    ts = stamp(wall)
    if last is not None and len(last) == TIMESTAMP_SIZE and ts <= last:
        return increment(last)
    return ts


def plus_seconds(ts: bytes, seconds: int) -> bytes:
    """The stamp `seconds` whole seconds after `ts` (for reserving stamps ahead)."""
    secs, nanos = _TAI.unpack(ts)
    return _TAI.pack(secs + seconds, nanos)
