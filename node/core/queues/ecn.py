"""ECN marking of an inner IP packet: Congestion Experienced instead of a drop (RFC 3168).

The two ECN bits are the low bits of the IPv4 TOS byte (RFC 3168 section 5) and of the
IPv6 Traffic Class (bits 4-5 of the second byte, RFC 8200 section 7). Not-ECT (00) cannot
be marked: the caller drops it. ECT(0) (10) and ECT(1) (01) become CE (11); a packet
already CE counts as marked and is left alone, as Linux's INET_ECN_set_ce does.

IPv4's header checksum covers the TOS byte, so it is updated incrementally by RFC 1624
equation 3, HC' = ~(~HC + ~m + m'), over the 16-bit word holding the TOS: a header that
was valid stays valid, one that was not stays not. IPv6 has no header checksum, and no
transport checksum covers either field.
"""

NOT_ECT = 0
ECT_1 = 1
ECT_0 = 2
CE = 3


def ecn_of(packet: bytes | bytearray | memoryview) -> int | None:
    """The ECN codepoint of an IPv4 or IPv6 packet, None if it is neither."""
    n = len(packet)
    if n < 20:
        return None
    version = packet[0] >> 4
    if version == 4:
        return packet[1] & 3
    if version == 6 and n >= 40:
        return (packet[1] >> 4) & 3
    return None


def set_ce(packet: bytes | bytearray | memoryview) -> bytes | None:
    """The packet marked CE as bytes (`packet` itself if it is bytes and already CE), or
    None if it cannot be marked: Not-ECT, or not an IPv4/IPv6 packet."""
    ecn = ecn_of(packet)
    if not ecn:
        return None
    if ecn == CE:
        return packet if isinstance(packet, bytes) else bytes(packet)
    out = bytearray(packet)
    if packet[0] >> 4 == 4:
        old = out[0] << 8 | out[1]
        out[1] |= CE
        total = (~(out[10] << 8 | out[11]) & 0xFFFF) + (~old & 0xFFFF) + (old | CE)
        total = (total & 0xFFFF) + (total >> 16)
        total = (total & 0xFFFF) + (total >> 16)
        check = ~total & 0xFFFF
        out[10] = check >> 8
        out[11] = check & 0xFF
    else:
        out[1] |= CE << 4
    return bytes(out)
