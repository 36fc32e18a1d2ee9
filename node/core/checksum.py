"""The internet checksum (RFC 1071), for the TUN offloads (gro.py, gso.py) and overlay.py.

A run of 16-bit big-endian words read as one number is congruent, modulo 0xFFFF, to
the sum of its words, since 2**16 = 1 (mod 0xFFFF): one big-integer conversion and one
modulo, both done by C, replace the word-by-word sum and its end-around carries.
"""


def words(data: bytes | bytearray | memoryview) -> int:
    """A number congruent (mod 0xFFFF) to the sum of the 16-bit words of `data`, an odd
    length padded with a zero byte. Such numbers add like the sums they stand for."""
    value = int.from_bytes(data, "big")
    return value << 8 if len(data) % 2 else value


def fold(total: int) -> int:
    """A sum of words folded to 16 bits with end-around carry: 1..0xFFFF, or 0 for 0.
    This is what a partial checksum (NEEDS_CSUM) field holds."""
    return (total - 1) % 0xFFFF + 1 if total else 0


def complement(total: int) -> int:
    """The checksum field for a sum of words: the one's complement of its folded sum."""
    return 0xFFFF - fold(total)


def checksum(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """The internet checksum of `data`, with `initial` (a sum of 16-bit words, e.g. a
    pseudo-header) added in."""
    return complement(words(data) + initial)


def set_ipv4_header_checksum(header: bytearray, ip_len: int = 20) -> None:
    """Recompute the header checksum (bytes 10-11) of the IPv4 header at the start of
    `header`, `ip_len` bytes long, in place."""
    header[10:12] = b"\x00\x00"
    header[10:12] = checksum(header[:ip_len]).to_bytes(2, "big")


def update(
    field: int, old: bytes | bytearray | memoryview, new: bytes | bytearray | memoryview
) -> int:
    """A checksum field after `old` became `new` in the data it covers (RFC 1624 eqn. 3,
    HC' = ~(~HC + ~m + m')); both runs start on a word boundary and are equally long.

    Done modulo 0xFFFF like the rest of this module: a covered sum is never zero
    (each covered header holds a non-zero word), so a multiple of 0xFFFF is -0 and
    the field is 0, as a full recomputation with `checksum` gives."""
    return (field + words(old) - words(new)) % 0xFFFF
