"""ECN across the tunnel: RFC 6040 normal mode, with the bits of RFC 3168.

The ECN field is the low two bits of the IPv4 TOS byte (byte 1) and of the IPv6
traffic class (bits 2-3 of byte 1), RFC 3168 section 5: 00 Not-ECT, 01 ECT(1),
10 ECT(0), 11 CE. Changing it in IPv4 changes the header checksum, which is updated
incrementally (RFC 1624) rather than recomputed; IPv6 has no header checksum.

On encapsulation the outer header copies the inner field (RFC 6040 section 4.1,
normal mode: CE is copied as CE). On decapsulation the outer field is combined with
the inner by the table of RFC 6040 section 4.2 (Figure 4): outer CE on a Not-ECT
inner packet drops it (the congestion cannot be passed on otherwise), outer CE on an
ECT packet marks it CE, outer ECT(1) on an inner ECT(0) makes it ECT(1), and every
other combination leaves the inner packet as it is.

Anything that is not an IPv4 or IPv6 header comes back unchanged (the same object)
and never raises: these functions may run on every packet.
"""

from .checksum import update

Packet = bytes | bytearray | memoryview

NOT_ECT = 0b00
ECT_1 = 0b01
ECT_0 = 0b10
CE = 0b11


def ecn_of(packet: Packet) -> int | None:
    """The ECN field of an IPv4 or IPv6 packet, or None if it is neither."""
    n = len(packet)
    if n >= 20 and packet[0] >> 4 == 4 and packet[0] & 0x0F >= 5:
        return packet[1] & 0b11
    if n >= 40 and packet[0] >> 4 == 6:
        return (packet[1] >> 4) & 0b11
    return None


def with_ecn(packet: Packet, ecn: int) -> Packet:
    """The packet with its ECN field set to `ecn` (a copy; the same object if the field
    already holds it or the packet is not IP)."""
    old = ecn_of(packet)
    if old is None or old == ecn:
        return packet
    out = bytearray(packet)
    if out[0] >> 4 == 4:
        before = bytes(out[0:2])
        out[1] = (out[1] & 0xFC) | ecn
        field = (out[10] << 8) | out[11]
        out[10:12] = update(field, before, out[0:2]).to_bytes(2, "big")
    else:
        out[1] = (out[1] & 0xCF) | (ecn << 4)
    return bytes(out)


def mark_ce(packet: Packet) -> Packet | None:
    """Mark an ECN-capable packet CE (RFC 3168 section 5), for an AQM that would drop it.
    A Not-ECT packet, or anything that is not IP, cannot be marked, so None: the caller
    drops it instead. One already CE is returned as it is (it counts as marked)."""
    ecn = ecn_of(packet)
    if ecn is None or ecn == NOT_ECT:
        return None
    if ecn == CE:
        return packet
    return with_ecn(packet, CE)


def encapsulate_ecn(inner: Packet) -> int:
    """The ECN field for the outer header (RFC 6040 section 4.1, normal mode: a copy)."""
    ecn = ecn_of(inner)
    return NOT_ECT if ecn is None else ecn


def decapsulate(outer_ecn: int, inner: Packet) -> Packet | None:
    """The inner packet as it leaves the tunnel (RFC 6040 section 4.2), or None: drop it."""
    ecn = ecn_of(inner)
    if ecn is None:
        return inner
    outer = outer_ecn & 0b11
    if outer == CE:
        return None if ecn == NOT_ECT else with_ecn(inner, CE)
    if outer == ECT_1 and ecn == ECT_0:
        return with_ecn(inner, ECT_1)
    return inner
