"""The internet checksum of node/core/checksum.py against RFC 1071 and a word-by-word sum."""

import struct

from hypothesis import given
from hypothesis import strategies as st

from tidewire.node.core.checksum import checksum, fold, words


def reference(data: bytes, initial: int = 0) -> int:
    """RFC 1071, section 4.1: add 16-bit words, fold the carries, complement."""
    if len(data) % 2:
        data += b"\x00"
    total = initial + sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def test_rfc_1071_example() -> None:
    # RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2 after folding
    data = bytes.fromhex("0001f203f4f5f6f7")
    assert fold(words(data)) == 0xDDF2
    assert checksum(data) == 0x220D


@given(data=st.binary(max_size=2000), initial=st.integers(0, 1 << 20))
def test_matches_a_word_by_word_sum(data: bytes, initial: int) -> None:
    assert checksum(data, initial) == reference(data, initial)


@given(a=st.binary(max_size=200).map(lambda b: b[: len(b) // 2 * 2]), b=st.binary(max_size=200))
def test_sums_of_parts_add_up(a: bytes, b: bytes) -> None:
    # an even-length head and any tail: what gso.py relies on for header + payload
    assert checksum(a + b) == checksum(b, words(a))
