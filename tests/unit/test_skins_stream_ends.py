"""The ends of a tcp/tls connection (protocol/skins/stream_ends.py): link datagrams cross
both ways masked and framed, the listener refuses until a frame unwraps (holding every
byte for a fallback), hostile streams end in a named refusal, and the client's first
packet is exempt under the first-packet rules of Wu et al., checked by our own
implementation of them here."""

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidewire.protocol.errors import RemoteProtocolError
from tidewire.protocol.skins.masked import MaskedSkin
from tidewire.protocol.skins.stream import PREAMBLE_SIZE, StreamConnection
from tidewire.protocol.skins.stream_ends import MAX_HELD, StreamClient, StreamServer

from .helpers import SeededRandom, keypair

LISTENER = keypair("listener")[1]
INITIATION = b"\x01\0\0\0" + bytes(range(144))
RESPONSE = b"\x02\0\0\0" + bytes(range(88))
REFUSALS = {
    "stream_preamble",
    "stream_frame_size",
    "stream_unauthenticated",
    "stream_http",
    "stream_held_too_much",
}


def transport(i: int, size: int = 200) -> bytes:
    return b"\x04\0\0\0" + bytes(4) + i.to_bytes(8, "little") + bytes(size - 16)


def pair(seed: str) -> tuple[StreamClient, StreamServer, Counter[str], Counter[str]]:
    rng = SeededRandom(seed)
    cd: Counter[str] = Counter()
    sd: Counter[str] = Counter()
    skin = MaskedSkin(LISTENER)
    return StreamClient(skin, rng=rng, drops=cd), StreamServer(skin, rng=rng, drops=sd), cd, sd


# -- the published rules, implemented independently --------------------------------
# Wu, Zohaib, Durumeric, Houmansadr, Wustrow, "How the Great Firewall of China Detects
# and Blocks Fully Encrypted Traffic", USENIX Security 2023, section 4.3 (Algorithm 1):
# a first data packet is exempt if Ex1 popcount/byte <= 3.4 or >= 4.6; Ex2 its first six
# bytes are printable (0x20-0x7e); Ex3 more than 50% of it is printable; Ex4 it holds more
# than 20 contiguous printable bytes; Ex5 it starts like TLS or HTTP.


def printable(b: int) -> bool:
    return 0x20 <= b <= 0x7E


def gfw_blocks(packet: bytes) -> bool:
    popcount = sum(bin(b).count("1") for b in packet) / len(packet)
    if popcount <= 3.4 or popcount >= 4.6:
        return False
    if all(printable(b) for b in packet[:6]):
        return False
    if sum(map(printable, packet)) > len(packet) / 2:
        return False
    run = best = 0
    for b in packet:
        run = run + 1 if printable(b) else 0
        best = max(best, run)
    if best > 20:
        return False
    if packet[:1] in (b"\x16", b"\x17") and packet[1:2] == b"\x03" and packet[2] <= 9:
        return False
    return not packet.startswith((b"GET ", b"PUT ", b"POST", b"HEAD"))


def test_the_rules_here_flag_random_bytes_and_exempt_each_case() -> None:
    rng = SeededRandom("rules")
    packet = rng(600)
    while printable(packet[0]):
        packet = rng(600)
    assert gfw_blocks(packet)
    assert not gfw_blocks(bytes(600))  # Ex1
    assert not gfw_blocks(b"abcdef" + packet)  # Ex2
    assert not gfw_blocks(packet[:1] + b"U" * 700)  # Ex3 ('U': four bits, not Ex1)
    assert not gfw_blocks(packet[:1] + b"q" * 21 + packet)  # Ex4
    assert not gfw_blocks(b"\x16\x03\x01" + packet)  # Ex5
    assert not gfw_blocks(b"GET " + packet)  # Ex5


def test_a_clients_first_packet_is_exempt_and_would_not_be_without_the_prefix() -> None:
    exempt = bare = 0
    for i in range(200):
        client, _, _, _ = pair(f"first-{i}")
        first = client.frame(INITIATION)
        exempt += not gfw_blocks(first)
        bare += gfw_blocks(first[8:])  # the same bytes without the printable token
    assert exempt == 200
    assert bare >= 190  # six printable bytes by chance: about 0.3 %


# -- the exchange ----------------------------------------------------------------------


def test_datagrams_cross_both_ways() -> None:
    client, server, cd, sd = pair("both")
    up = [INITIATION, *(transport(i, 32 + i * 50) for i in range(20))]
    wire = b"".join(client.frame(d) for d in up)
    assert server.feed(wire) == up
    assert server.authenticated and server.held == b""
    down = [RESPONSE, *(transport(i, 1452) for i in range(5))]
    back = b"".join(server.frame(d) for d in down)
    assert [d for i in range(len(back)) for d in client.feed(back[i : i + 1])] == down
    assert not cd and not sd


def test_a_truncated_first_flight_waits_and_holds_every_byte() -> None:
    client, server, _, _ = pair("trunc")
    wire = client.frame(INITIATION)
    for i in range(len(wire) - 1):
        assert server.feed(wire[i : i + 1]) == []
        assert server.held == wire[: i + 1] and not server.authenticated
    assert server.feed(wire[-1:]) == [INITIATION]


def test_a_first_frame_that_does_not_unwrap_is_refused() -> None:
    rng = SeededRandom("unauth")
    other = StreamConnection.client(LISTENER, rng=rng)  # the framing, but no masked datagram
    wire = other.frame(rng(200))
    server = pair("unauth")[1]
    with pytest.raises(RemoteProtocolError) as exc:
        server.feed(wire)
    assert exc.value.reason == "stream_unauthenticated" and server.held == wire


def test_a_wrong_listener_key_is_refused() -> None:
    rng = SeededRandom("wrong")
    wrong = StreamClient(MaskedSkin(keypair("other")[1]), rng=rng, drops=Counter())
    server = pair("wrong")[1]
    with pytest.raises(RemoteProtocolError) as exc:  # at once, or once it held too much
        server.feed(wrong.frame(INITIATION))
        for i in range(100):
            assert server.feed(wrong.frame(transport(i))) == []
    assert exc.value.reason in REFUSALS and not server.authenticated


def test_an_http_request_is_refused_at_its_end_with_every_byte_held() -> None:
    server = pair("http")[1]
    request = b"GET / HTTP/1.1\r\nHost: example.net\r\n\r\n"
    with pytest.raises(RemoteProtocolError) as exc:
        for i in range(len(request)):  # the way a slow prober sends it
            server.feed(request[i : i + 1])
    assert exc.value.reason in REFUSALS and server.held == request[: i + 1]


def test_a_listener_holds_at_most_max_held_bytes() -> None:
    rng = SeededRandom("held")
    framed = StreamConnection.client(LISTENER, rng=rng).frame(rng(60000))  # one big frame
    server = pair("held")[1]
    with pytest.raises(RemoteProtocolError) as exc:
        for at in range(0, len(framed), 1000):
            server.feed(framed[at : at + 1000])
    assert exc.value.reason == "stream_held_too_much" and len(server.held) <= MAX_HELD + 1000


def test_after_the_first_frame_one_that_does_not_unwrap_is_counted_and_dropped() -> None:
    client, server, _, sd = pair("later")
    server.feed(client.frame(INITIATION))
    conn = client._conn  # a frame of garbage in step with the client's lengths
    wire = conn.frame(bytes(64)) + client.frame(transport(1))
    assert server.feed(wire) == [transport(1)]
    assert sd["stream_unwrap_failed"] == 1


# -- hostile streams ---------------------------------------------------------------


@settings(max_examples=300)
@given(chunks=st.lists(st.binary(max_size=400), max_size=8))
def test_random_bytes_at_a_listener_wait_or_end_in_a_named_refusal(chunks: list[bytes]) -> None:
    server = pair("random")[1]
    sent = b""
    try:
        for chunk in chunks:
            sent += chunk
            assert server.feed(chunk) == []
            assert server.held == sent
    except RemoteProtocolError as exc:
        assert exc.reason in REFUSALS
        assert server.held == sent
    assert not server.authenticated


@settings(max_examples=200)
@given(cut=st.integers(0, 10**6), data=st.binary(max_size=200))
def test_garbage_after_a_good_start_is_a_framing_error_or_dropped(cut: int, data: bytes) -> None:
    client, server, _, _ = pair("tail")
    wire = client.frame(INITIATION) + client.frame(transport(2))
    cut = PREAMBLE_SIZE + cut % (len(wire) - PREAMBLE_SIZE)
    try:
        got = server.feed(wire[:cut] + data)
    except RemoteProtocolError as exc:
        assert exc.reason in REFUSALS
    else:
        assert all(d[:1] in (b"\x01", b"\x04") for d in got)
