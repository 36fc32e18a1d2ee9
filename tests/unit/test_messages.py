"""Message formats: sizes, Construct and struct agree, builders and parsers invert."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidewire.protocol.errors import RemoteProtocolError
from tidewire.protocol.link import messages


def test_sizes_of_the_whitepaper() -> None:
    assert messages.INITIATION.sizeof() == 148
    assert messages.RESPONSE.sizeof() == 92
    assert messages.COOKIE_REPLY.sizeof() == 64
    assert messages.TRANSPORT_HEADER.sizeof() == 16


@given(receiver=st.integers(0, 2**32 - 1), counter=st.integers(0, 2**64 - 1))
def test_struct_header_matches_construct(receiver: int, counter: int) -> None:
    fast = messages.HEADER.pack(4, receiver, counter)
    slow = messages.TRANSPORT_HEADER.build({"receiver": receiver, "counter": counter})
    assert fast == slow
    parsed = messages.TRANSPORT_HEADER.parse(fast)
    assert (parsed.receiver, parsed.counter) == (receiver, counter)


@given(
    sender=st.integers(0, 2**32 - 1),
    blobs=st.tuples(*(st.binary(min_size=n, max_size=n) for n in (32, 48, 28, 16, 16))),
)
def test_initiation_round_trip(sender: int, blobs: tuple[bytes, ...]) -> None:
    m = messages.Initiation(sender, *blobs)
    data = messages.build_initiation(m)
    assert len(data) == 148 and data[:4] == b"\x01\x00\x00\x00"
    assert messages.parse_initiation(data) == m


@given(
    ids=st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    blobs=st.tuples(*(st.binary(min_size=n, max_size=n) for n in (32, 16, 16, 16))),
)
def test_response_round_trip(ids: tuple[int, int], blobs: tuple[bytes, ...]) -> None:
    m = messages.Response(*ids, *blobs)
    assert messages.parse_response(messages.build_response(m)) == m


def test_cookie_reply_round_trip() -> None:
    m = messages.CookieReply(7, bytes(range(24)), bytes(range(32)))
    assert messages.parse_cookie_reply(messages.build_cookie_reply(m)) == m


def test_reserved_bytes_must_be_zero() -> None:
    m = messages.build_cookie_reply(messages.CookieReply(7, bytes(24), bytes(32)))
    assert messages.message_type(b"\x03\x01" + m[2:]) == 0
    with pytest.raises(RemoteProtocolError) as err:
        messages.parse_cookie_reply(b"\x03\x01" + m[2:])
    assert err.value.reason == "cookie_reply_format"


@pytest.mark.parametrize(
    ("length", "mtu", "expected"),
    [
        (0, None, 0),
        (1, None, 16),
        (16, None, 16),
        (17, None, 32),
        (1419, 1420, 1420),
        (1420, 1420, 1420),
    ],
)
def test_padding(length: int, mtu: int | None, expected: int) -> None:
    assert messages.padded_length(length, mtu) == expected
