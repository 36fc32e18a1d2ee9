"""The stream framing of the tcp skin (protocol/skins/stream.py): round trips in any
chunking, masked lengths, the first-packet rules of Wu et al. (USENIX Security 2023), and
hostile streams that end in one specific error with the deframer unchanged."""

import hashlib
import itertools
import os

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from hypothesis import given, settings
from hypothesis import strategies as st

from tidewire.protocol.errors import LocalProtocolError, RemoteProtocolError
from tidewire.protocol.skins.masked import MaskedSkin
from tidewire.protocol.skins.stream import (
    MAX_FRAME,
    PREAMBLE_SIZE,
    UPSTREAM,
    StreamConnection,
    StreamDeframer,
    StreamFramer,
    looks_fully_encrypted,
)

from .helpers import SeededRandom, keypair

RESPONDER = keypair("bob")[1]
SKIN = MaskedSkin(RESPONDER)


def initiation(rng: SeededRandom) -> bytes:
    return SKIN.wrap(b"\x01\0\0\0" + rng(144), rng=rng)


def transports(count: int, rng: SeededRandom) -> list[bytes]:
    out = []
    for i in range(count):
        size = 32 + (i * 37) % 1400
        datagram = b"\x04\0\0\0" + rng(4) + i.to_bytes(8, "little") + rng(size - 16)
        out.append(SKIN.wrap(datagram, rng=rng))
    return out


def state(deframer: StreamDeframer) -> tuple[object, ...]:
    return (deframer.buffered, deframer._pos, deframer.nonce, deframer._buffer)


def connect(seed: str) -> tuple[StreamConnection, StreamConnection, bytes]:
    """A client and a server after the client's first flight (preamble + initiation)."""
    rng = SeededRandom(seed)
    client, server = StreamConnection.client(RESPONDER, rng=rng), StreamConnection.server(RESPONDER)
    first = initiation(rng)
    assert server.feed(client.frame(first)) == [first]
    return client, server, first


def test_datagrams_cross_both_ways_in_one_piece_and_byte_by_byte() -> None:
    client, server, _ = connect("both")
    rng = SeededRandom("both-data")
    up, down = transports(1200, rng), transports(600, rng)  # past a keystream chunk (512)
    stream = b"".join(client.frame(d) for d in up)
    assert server.feed(stream) == up
    back = b"".join(server.frame(d) for d in down)
    split = sum(len(d) + 2 for d in down[:20])
    got = [d for i in range(split) for d in client.feed(back[i : i + 1])]  # byte by byte
    assert got == down[:20]
    assert client.feed(back[split:]) == down[20:]


@settings(max_examples=50)
@given(cuts=st.lists(st.integers(0, 6000), max_size=20))
def test_any_chunking_gives_the_same_datagrams(cuts: list[int]) -> None:
    rng = SeededRandom("chunks")
    client, server = StreamConnection.client(RESPONDER, rng=rng), StreamConnection.server(RESPONDER)
    datagrams = [initiation(rng), *transports(8, rng)]
    stream = b"".join(client.frame(d) for d in datagrams)
    bounds = sorted({c % len(stream) for c in cuts} | {0, len(stream)})
    got: list[bytes] = []
    for start, end in itertools.pairwise(bounds):
        got += server.feed(stream[start:end])
        assert server.deframer.buffered <= max(PREAMBLE_SIZE, 2 + MAX_FRAME)
    assert got == datagrams


def test_length_mask_known_answer() -> None:
    """The first frame's length is XORed with ChaCha20(K_dir, counter 0, nonce 0)[0:2],
    K_dir = BLAKE2s(key=BLAKE2s("tidewire stream len v1" || S_pub), nonce || direction)."""
    public, nonce = bytes(range(32)), bytes(range(16, 32))
    base = hashlib.blake2s(b"tidewire stream len v1" + public).digest()
    k_up = hashlib.blake2s(nonce + b"\x00", key=base).digest()
    keystream = Cipher(algorithms.ChaCha20(k_up, bytes(16)), None).encryptor().update(bytes(4))
    framer = StreamFramer(public, nonce=nonce, direction=UPSTREAM)
    datagram = bytes(range(100))
    masked = int.from_bytes(framer.frame(datagram)[:2], "big")
    assert masked ^ int.from_bytes(keystream[:2], "big") == 100
    assert framer.frame(datagram)[:2] == bytes(
        a ^ b for a, b in zip(b"\x00\x64", keystream[2:], strict=True)
    )


def test_lengths_on_the_wire_are_masked() -> None:
    rng = SeededRandom("masks")
    datagram = transports(1, rng)[0]
    client = StreamConnection.client(RESPONDER, rng=rng)
    fields = [client.frame(datagram)[-len(datagram) - 2 :][:2] for _ in range(300)]
    assert len(set(fields)) > 250  # the same length, a different field each time
    assert fields.count(len(datagram).to_bytes(2, "big")) <= 1
    # Each connection has its own nonce, so the first frames of two differ too.
    firsts = {
        StreamConnection.client(RESPONDER, rng=rng).frame(datagram)[PREAMBLE_SIZE:][:2]
        for _ in range(50)
    }
    assert len(firsts) > 45


def test_a_server_frames_only_after_the_preamble() -> None:
    server = StreamConnection.server(RESPONDER)
    with pytest.raises(LocalProtocolError, match="preamble"):
        server.frame(bytes(64))
    client = StreamConnection.client(RESPONDER, rng=SeededRandom("x"))
    for size in (0, 31, MAX_FRAME + 1):
        with pytest.raises(LocalProtocolError):
            client.frame(bytes(size))


# -- the first-packet rules (Wu et al., USENIX Security 2023) ----------------------------


def test_the_rules_flag_random_bytes_and_exempt_each_case() -> None:
    rng = SeededRandom("rules")
    random_packet = rng(600)
    assert looks_fully_encrypted(random_packet)
    tail = random_packet[6:]  # byte 0 first: keeps the random prefix non-printable
    assert random_packet[0] < 0x20 or random_packet[0] > 0x7E
    assert not looks_fully_encrypted(bytes(600))  # Ex1: popcount 0
    assert not looks_fully_encrypted(b"\xff" * 600)  # Ex1: popcount 8
    assert not looks_fully_encrypted(b"abcdef" + tail)  # Ex2
    # 'U' and 'q' have four bits set, so Ex1 stays out of these.
    assert not looks_fully_encrypted(random_packet[:1] + b"U" * 400 + tail[:350])  # Ex3
    assert not looks_fully_encrypted(random_packet[:1] + b"q" * 21 + b"\0" + tail)  # Ex4
    assert looks_fully_encrypted(random_packet[:1] + b"q" * 20 + b"\0" + tail)  # not more
    assert not looks_fully_encrypted(b"\x16\x03\x01" + tail)  # Ex5, TLS
    assert not looks_fully_encrypted(b"POST" + tail)  # Ex5, HTTP
    assert not looks_fully_encrypted(b"")


def test_the_first_flight_is_exempt_and_a_bare_masked_datagram_is_not() -> None:
    rng = SeededRandom("flight")
    flights, bare = [], []
    for _ in range(200):
        first = initiation(rng)
        bare.append(looks_fully_encrypted(first))
        flights.append(
            looks_fully_encrypted(StreamConnection.client(RESPONDER, rng=rng).frame(first))
        )
    assert not any(flights)
    assert sum(bare) >= 190  # six printable bytes by chance: (95/256)**6, about 0.3 %


# -- hostile streams ------------------------------------------------------------------


@settings(max_examples=200)
@given(data=st.binary(max_size=300))
def test_random_bytes_at_a_server_raise_only_the_specific_error(data: bytes) -> None:
    server = StreamConnection.server(RESPONDER)
    try:
        server.feed(data)
    except RemoteProtocolError as exc:
        assert exc.reason in ("stream_preamble", "stream_frame_size")


@settings(max_examples=200)
@given(data=st.binary(max_size=300))
def test_random_bytes_after_the_preamble_leave_the_deframer_as_it_was(data: bytes) -> None:
    _, server, _ = connect("rand")
    before = state(server.deframer)
    try:
        frames = server.feed(data)
    except RemoteProtocolError as exc:
        assert exc.reason == "stream_frame_size"
        assert state(server.deframer) == before
    else:
        assert all(32 <= len(f) <= MAX_FRAME for f in frames)


@settings(max_examples=200)
@given(bit=st.integers(0, 10**6))
def test_a_flipped_bit_gives_a_dropped_datagram_or_the_error(bit: int) -> None:
    rng = SeededRandom("flip")
    client, server = StreamConnection.client(RESPONDER, rng=rng), StreamConnection.server(RESPONDER)
    datagrams = [initiation(rng), *transports(4, rng)]
    stream = bytearray(b"".join(client.frame(d) for d in datagrams))
    bit %= 8 * len(stream)
    stream[bit // 8] ^= 1 << (bit % 8)
    try:
        frames = server.feed(bytes(stream))
    except RemoteProtocolError as exc:
        assert exc.reason in ("stream_preamble", "stream_frame_size")
        return
    assert len(frames) <= len(datagrams)
    original = [SKIN.unwrap(d) for d in datagrams]
    for frame in frames:
        out = SKIN.unwrap(frame)
        # A forged handshake never comes out; a changed transport header goes to the link,
        # whose AEAD refuses it; a flip in the padding or the token changes nothing.
        assert out is None or out in original or out[0] == 4


def test_an_oversized_frame_fails_without_losing_the_stream() -> None:
    rng = SeededRandom("big")
    nonce = rng(16)
    framer = StreamFramer(RESPONDER, nonce=nonce, direction=UPSTREAM)
    small, big = bytes(range(40)), bytes(range(100))
    stream = framer.frame(small) + framer.frame(big) + framer.frame(small)
    deframer = StreamDeframer(RESPONDER, direction=UPSTREAM, nonce=nonce, max_frame=64)
    before = state(deframer)
    with pytest.raises(RemoteProtocolError) as caught:
        deframer.feed(stream)
    assert caught.value.reason == "stream_frame_size"
    assert state(deframer) == before  # the small frame before it is not consumed either
    assert deframer.feed(stream[:42]) == [small]
    roomy = StreamDeframer(RESPONDER, direction=UPSTREAM, nonce=nonce)
    assert roomy.feed(stream) == [small, big, small]


def test_a_bad_preamble_is_refused_at_its_first_byte() -> None:
    server = StreamConnection.server(RESPONDER)
    assert server.feed(b"Ab3") == []
    with pytest.raises(RemoteProtocolError) as caught:
        server.feed(b"\x00")
    assert caught.value.reason == "stream_preamble"
    assert server.deframer.buffered == 3


def test_the_wrong_responder_key_gets_no_datagram() -> None:
    rng = SeededRandom("wrong")
    client = StreamConnection.client(RESPONDER, rng=rng)
    sent = transports(40, rng)
    stream = b"".join(client.frame(d) for d in sent)
    server = StreamConnection.server(keypair("carol")[1])
    try:
        frames = server.feed(stream)
    except RemoteProtocolError:
        frames = []
    assert not set(frames) & set(sent)
    assert server.deframer.buffered <= 2 + MAX_FRAME


def test_preamble_uses_the_injected_randomness_only() -> None:
    a = StreamConnection.client(RESPONDER, rng=SeededRandom("same")).pending
    b = StreamConnection.client(RESPONDER, rng=SeededRandom("same")).pending
    assert a == b and len(a) == PREAMBLE_SIZE
    assert StreamConnection.client(RESPONDER, rng=os.urandom).pending != a
