"""Relay frames and the relay's decisions (node/core/relay.py, protocol/control/relay.py):
the frame layout byte for byte, random bytes never raising, delivery, forwarding on a
direct peer or a route, every drop counted by reason, and the per-pair caps in virtual
time."""

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidewire.node.core import overlay
from tidewire.node.core.relay import (
    MIN_BURST,
    PAIR_IDLE,
    Deliver,
    Forward,
    Relay,
    RelayConfig,
    address,
    decode,
    encode,
    keys_of,
)
from tidewire.protocol.control import relay as wire
from tidewire.protocol.keys import encode_key as encode_key_b64

from .helpers import keypair

C, R, E, X = (keypair("relay-unit-" + n)[1] for n in "crex")


def relay(
    me: bytes = R,
    *,
    peers: tuple[bytes, ...] = (C, E),
    routes: dict[bytes, bytes] | None = None,
    trusted: tuple[bytes, ...] = (),
    **config: object,
) -> Relay:
    cfg = RelayConfig(**{"enabled": True, **config})  # type: ignore[arg-type]
    table = routes or {}
    return Relay(
        public_key=me,
        local_overlay=overlay.overlay_address(me),
        config=cfg,
        next_hop=lambda k: k if k in peers else table.get(k),
        trusted=lambda k: k in trusted,
        overlay_of=overlay.overlay_address,
    )


def frame_from(
    sender: bytes, to: bytes, *, dst: bytes, src: bytes, data: bytes, ttl: int = 8
) -> bytes:
    return wire.build(
        overlay.overlay_address(sender),
        overlay.overlay_address(to),
        ttl=ttl,
        destination=dst,
        source=src,
        datagram=data,
    )


def test_the_frame_layout_byte_for_byte() -> None:
    # the layout of docs/protocol/relay.md, "Frame", written out by hand
    src6, dst6 = bytes(range(16)), bytes(range(16, 32))
    dkey, skey = b"\xdd" * 32, b"\x55" * 32
    data = b"\x04\x00\x00\x00datagram"
    got = wire.build(src6, dst6, ttl=8, destination=dkey, source=skey, datagram=data)
    length = 4 + 64 + len(data)
    expected = (
        bytes.fromhex("60000000")
        + struct.pack("!H", length)
        + bytes([253, 64])  # next header 253: RFC 3692's experimental number (RFC 4727 s. 3)
        + src6
        + dst6
        + bytes([32, 2, 8, 0])
        + dkey
        + skey
        + data
    )
    assert got == expected
    # 1420 - 140 = 1280: IPv6's minimum MTU (RFC 8200 section 5) at the default link MTU
    assert wire.HEADER_SIZE == 108 and wire.OVERHEAD == 140
    assert wire.is_frame(got)
    assert wire.parse(got) == wire.Frame(src6, 8, dkey, skey, data)


@given(st.binary(max_size=300))
def test_random_bytes_never_raise(data: bytes) -> None:
    parsed = wire.parse(data)
    assert parsed is None or parsed.datagram
    r = relay()
    r.receive(C, data, now=0.0)  # returns or drops; never raises
    assert sum(r.drops.values()) + r.counters["delivered"] + r.counters["forwarded"] == 1


@given(
    st.binary(min_size=1, max_size=64), st.integers(0, wire.HEADER_SIZE + 63), st.integers(0, 255)
)
def test_a_frame_with_any_byte_changed_is_parsed_or_refused_without_raising(
    data: bytes, at: int, value: int
) -> None:
    good = frame_from(C, R, dst=E, src=C, data=data)
    bad = bytearray(good)
    bad[at % len(bad)] = value
    r = relay()
    r.receive(C, bytes(bad), now=0.0)
    assert sum(r.drops.values()) + r.counters["forwarded"] + r.counters["delivered"] == 1


def test_truncated_and_mislabelled_frames_are_refused() -> None:
    good = frame_from(C, R, dst=E, src=C, data=b"d" * 40)
    assert wire.parse(good[:-1]) is None  # the IPv6 length no longer matches
    assert wire.parse(good[: wire.HEADER_SIZE]) is None  # no datagram
    other_kind = bytearray(good)
    other_kind[40] = 33
    assert wire.parse(bytes(other_kind)) is None
    r = relay()
    assert r.receive(C, good[:-1], now=0.0) is None
    assert r.drops == {"relay_malformed": 1}


def test_a_frame_for_us_is_delivered_on_the_relayed_path_of_its_source() -> None:
    r = relay(E)
    got = r.receive(R, frame_from(R, E, dst=E, src=C, data=b"hs"), now=0.0)
    assert got == Deliver(address(R, C), b"hs")
    assert keys_of(got.address[0]) == (R, C)


def test_forwarding_to_a_direct_peer_rewrites_the_headers_and_counts_the_pair() -> None:
    r = relay()
    got = r.receive(C, frame_from(C, R, dst=E, src=C, data=b"x" * 100), now=0.0)
    assert isinstance(got, Forward) and got.next_hop == E
    out = wire.parse(got.packet)
    assert out == wire.Frame(overlay.overlay_address(R), 7, E, C, b"x" * 100)
    assert got.packet[24:40] == overlay.overlay_address(E)
    [pair] = r.status()
    assert pair["frames"] == 1 and pair["bytes"] == 100
    # the answer is the same pair (both directions of one session)
    r.receive(E, frame_from(E, R, dst=C, src=E, data=b"y" * 50), now=0.1)
    [pair] = r.status()
    assert pair["frames"] == 2 and pair["bytes"] == 150


def test_multi_hop_follows_the_route_and_the_ttl() -> None:
    r = relay(peers=(C,), routes={E: X})  # E is reached through the neighbour X
    got = r.receive(C, frame_from(C, R, dst=E, src=C, data=b"d", ttl=3), now=0.0)
    assert isinstance(got, Forward) and got.next_hop == X
    assert wire.parse(got.packet).ttl == 2  # type: ignore[union-attr]
    assert r.receive(C, frame_from(C, R, dst=E, src=C, data=b"d", ttl=1), now=0.0) is None
    assert r.drops["relay_ttl"] == 1


def test_a_frame_for_an_unknown_destination_is_dropped_and_counted() -> None:
    r = relay()
    assert r.receive(C, frame_from(C, R, dst=X, src=C, data=b"d"), now=0.0) is None
    assert r.drops == {"relay_no_route": 1}
    assert r.pairs == {}


def test_every_other_refusal_has_its_reason() -> None:
    r = relay(routes={X: C})
    r.receive(C, frame_from(X, R, dst=E, src=C, data=b"d"), now=0.0)  # not C's overlay address
    r.receive(C, frame_from(C, R, dst=X, src=C, data=b"d"), now=0.0)  # X's route goes back to C
    off = relay(enabled=False)
    off.receive(C, frame_from(C, R, dst=E, src=C, data=b"d"), now=0.0)
    assert r.drops == {"relay_wrong_source": 1, "relay_back_to_sender": 1}
    assert off.drops == {"relay_disabled": 1}


def test_an_untrusted_neighbour_cannot_speak_for_another_source() -> None:
    r = relay(peers=(C, E, X))
    got = r.receive(C, frame_from(C, R, dst=E, src=X, data=b"d"), now=0.0)
    assert isinstance(got, Forward) and wire.parse(got.packet).source == C  # type: ignore[union-attr]
    trusting = relay(peers=(C, E, X), trusted=(C,))
    got = trusting.receive(C, frame_from(C, R, dst=E, src=X, data=b"d"), now=0.0)
    assert isinstance(got, Forward) and wire.parse(got.packet).source == X  # type: ignore[union-attr]


def test_the_byte_cap_holds_per_pair() -> None:
    r = relay(pair_cap=1000, pair_rate=None)
    sent = [r.receive(C, frame_from(C, R, dst=E, src=C, data=b"d" * 300), now=t) for t in range(5)]
    assert [isinstance(s, Forward) for s in sent] == [True, True, True, False, False]
    [pair] = r.status()
    assert pair["bytes"] == 900 and pair["drops"] == {"cap": 2}
    assert r.drops["relay_cap"] == 2


def test_the_rate_paces_frames_through_a_bounded_queue_in_virtual_time() -> None:
    rate = 100_000  # bytes per second: the burst is MIN_BURST (64 KiB), the queue 64 KiB too
    r = relay(pair_rate=rate, pair_cap=None)

    def one(now: float, data: bytes = b"d" * 1000) -> object:
        return r.receive(C, frame_from(C, R, dst=E, src=C, data=data), now=now)

    sent = [one(0.0) for _ in range(100)]
    assert sum(isinstance(s, Forward) for s in sent) == MIN_BURST // 1000  # 65 leave at once
    assert r.counters["queued"] == 35 and not r.drops  # the rest wait: nothing is dropped
    assert r.get_timer() == pytest.approx(0.00464)  # 536 bytes left, 464 more at 100 kB/s
    r.handle_timer(now=0.004)
    assert r.take_released() == []  # 936 bytes of tokens: not enough for the head
    r.handle_timer(now=0.00464)
    [first] = r.take_released()
    assert first.next_hop == E and wire.parse(first.packet).datagram == b"d" * 1000  # type: ignore[union-attr]
    r.handle_timer(now=0.2)  # 0.195 s more of the rate: 19 frames, in order, no burst
    assert len(r.take_released()) == 19 and r.status()[0]["queued"] == 15_000
    r.handle_timer(now=1.0)
    assert len(r.take_released()) == 15 and not r.waiting and r.get_timer() is None
    [pair] = r.status()
    assert pair["frames"] == 100 and pair["bytes"] == 100_000 and pair["drops"] == {}

    # past the queue: after an idle spell 65 frames leave, 65 wait, the rest are dropped
    sent = [one(10.0) for _ in range(200)]
    assert sum(isinstance(s, Forward) for s in sent) == 65
    assert r.status()[0]["queued"] == 65_000
    assert r.drops["relay_rate"] == 70 and r.status()[0]["drops"] == {"rate": 70}


def test_a_reload_changes_the_pair_rate_of_pairs_that_wait() -> None:
    """Frames queued for a slow pair rate leave at the new rate after reconfigure, at
    once when it is unlimited; a lower max_pairs refuses the next new pair only."""
    r = relay(peers=(C, E, X), pair_rate=100_000, pair_cap=None)

    def one(now: float, src: bytes = C, dst: bytes = E) -> object:
        return r.receive(src, frame_from(src, R, dst=dst, src=src, data=b"d" * 1000), now=now)

    [one(0.0) for _ in range(100)]  # 65 leave, 35 wait
    slow = r.get_timer()
    r.reconfigure(RelayConfig(enabled=True, pair_rate=1_000_000, pair_cap=None), now=0.001)
    assert r.take_released() == []  # 636 bytes of tokens by then, the head needs 1,000
    fast = r.get_timer()
    assert slow is not None and fast is not None and fast < slow
    r.reconfigure(RelayConfig(enabled=True, pair_rate=None, pair_cap=None), now=0.002)
    assert not r.waiting and r.get_timer() is None and r.held == 0
    assert r.status()[0]["frames"] == 100 and not r.drops
    unlimited = RelayConfig(enabled=True, pair_rate=None, pair_cap=None, max_pairs=1)
    r.reconfigure(unlimited, now=0.003)
    assert isinstance(one(0.004), Forward)  # the pair there carries on
    assert one(0.004, src=E, dst=X) is None and r.drops["relay_pairs_full"] == 1


def test_a_paid_pair_is_charged_to_the_end_that_opened_it_when_frames_leave() -> None:
    """require_receipts: the payer is the neighbour that sent the pair's first frame as its
    own; frames away from it are up, towards it down; queued frames are charged when the
    rate lets them go (virtual time), and a refused charge is a counted drop."""
    charged: list[tuple[bytes, int, bool]] = []
    refuse = {"now": False}

    def charge(payer: bytes, n: int, up: bool) -> bool:
        if refuse["now"]:
            return False
        charged.append((payer, n, up))
        return True

    r = relay(require_receipts=True, pair_rate=100_000, pair_cap=None)
    r.charge = charge
    assert isinstance(
        r.receive(C, frame_from(C, R, dst=E, src=C, data=b"u" * 1000), now=0.0), Forward
    )
    assert isinstance(
        r.receive(E, frame_from(E, R, dst=C, src=E, data=b"d" * 500), now=0.0), Forward
    )
    assert charged == [(C, 1000, True), (C, 500, False)]
    assert r.status()[0]["payer"] == encode_key_b64(C)
    for _ in range(70):  # past the burst: these wait in the queue, charged only on leaving
        r.receive(C, frame_from(C, R, dst=E, src=C, data=b"u" * 1000), now=0.0)
    queued = r.counters["queued"]
    assert queued > 0 and len(charged) == 2 + 70 - queued
    r.handle_timer(now=0.02)
    assert len(charged) == 2 + 70 - queued + len(r.take_released())
    refuse["now"] = True
    r.handle_timer(now=1.0)
    assert r.take_released() == [] and r.status()[0]["drops"] == {"unpaid": r.drops["relay_unpaid"]}
    assert r.drops["relay_unpaid"] > 0 and not r.waiting
    assert r.status()[0]["frames"] == len(charged)  # a refused frame is not forwarded


def test_an_opener_that_does_not_pay_gives_way_to_an_end_that_does() -> None:
    """After a restart the exit's answer may open the pair first: it never pays, so the
    first frame from or to the client, which has a paid session, makes the client the
    payer; two paying ends keep the one they have (no flip-flop)."""
    paying: set[bytes] = set()
    charged: list[bytes] = []
    r = relay(require_receipts=True, pair_rate=None, peers=(C, E, X))

    def charge(payer: bytes, n: int, up: bool) -> bool:
        charged.append(payer)
        return True

    r.charge = charge
    r.paying = paying.__contains__
    r.receive(E, frame_from(E, R, dst=C, src=E, data=b"d" * 10), now=0.0)
    assert charged == [E]  # opened by E, nobody pays yet
    paying.add(C)  # C's hello opened its session
    r.receive(E, frame_from(E, R, dst=C, src=E, data=b"d" * 10), now=0.1)  # towards C
    r.receive(C, frame_from(C, R, dst=E, src=C, data=b"u" * 10), now=0.2)
    assert charged == [E, C, C] and r.status()[0]["payer"] == encode_key_b64(C)
    # C and X both pay: the pair C-X stays with whichever paid first
    paying.add(X)
    charged.clear()
    r.receive(C, frame_from(C, R, dst=X, src=C, data=b"u" * 10), now=0.3)
    r.receive(X, frame_from(X, R, dst=C, src=X, data=b"u" * 10), now=0.4)
    r.receive(C, frame_from(C, R, dst=X, src=C, data=b"u" * 10), now=0.5)
    assert charged == [C, C, C]


def test_a_pair_opened_through_a_trusted_relay_is_free_here() -> None:
    """A frame another relay forwards for an end that is not our peer: the first relay
    bills it, so this pair has no payer and nothing is charged."""
    r = relay(require_receipts=True, peers=(R, E), trusted=(R,), me=X)
    r.charge = lambda payer, n, up: False
    assert isinstance(
        r.receive(R, frame_from(R, X, dst=E, src=C, data=b"x" * 100), now=0.0), Forward
    )
    assert r.status()[0]["payer"] is None


@pytest.mark.parametrize(("data_from", "ack_from"), [(C, E), (E, C)], ids=["c-e", "e-c"])
def test_the_two_directions_of_a_pair_take_turns_in_its_queue(
    data_from: bytes, ack_from: bytes
) -> None:
    """The ACKs of the far end do not wait behind a full queue of data the other way
    (both ways round: one of the two directions is the pair's first queue)."""
    r = relay(pair_rate=100_000, pair_cap=None)

    def data() -> object:
        frame = frame_from(data_from, R, dst=ack_from, src=data_from, data=b"d" * 1000)
        return r.receive(data_from, frame, now=0.0)

    while isinstance(data(), Forward):
        pass
    for _ in range(4):
        data()
    ack = frame_from(ack_from, R, dst=data_from, src=ack_from, data=b"ack")
    assert r.receive(ack_from, ack, now=0.0) is None  # queued behind the pair's debt
    r.handle_timer(now=1.0)
    order = [f.next_hop for f in r.take_released()]
    assert sorted(order) == sorted([ack_from] * 5 + [data_from])
    assert data_from in order[:2]  # second at the latest, not last of six


def test_every_pair_together_holds_at_most_the_total_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    from tidewire.node.core import relay as core

    monkeypatch.setattr(core, "TOTAL_QUEUE", 3000)
    ends = [keypair(f"relay-total-{i}")[1] for i in range(2)]
    r = relay(peers=(C, *ends), pair_rate=100_000, pair_cap=None)
    for end in ends:
        while isinstance(
            r.receive(C, frame_from(C, R, dst=end, src=C, data=b"d" * 1000), now=0.0), Forward
        ):
            pass
        r.receive(C, frame_from(C, R, dst=end, src=C, data=b"d" * 1000), now=0.0)
    # the first pair left one frame queued (and one in the loop's last call): 2000 held;
    # the second pair's two frames find 1000 bytes of room: one is queued, one dropped
    assert r.held == 3000 and r.drops == {"relay_queue_full": 1}


def test_the_pair_table_is_bounded_and_keeps_busy_pairs() -> None:
    ends = [keypair(f"relay-end-{i}")[1] for i in range(3)]
    r = relay(peers=(C, *ends), max_pairs=2)
    for i in range(2):
        assert r.receive(C, frame_from(C, R, dst=ends[i], src=C, data=b"d"), now=0.0)
    assert r.receive(C, frame_from(C, R, dst=ends[2], src=C, data=b"d"), now=1.0) is None
    assert r.drops["relay_pairs_full"] == 1
    # once the oldest is idle long enough, it gives its slot (and its count) away
    assert r.receive(C, frame_from(C, R, dst=ends[2], src=C, data=b"d"), now=PAIR_IDLE + 1)
    assert len(r.pairs) == 2 and r.counters["pairs_forgotten"] == 1


def test_relayed_path_addresses_round_trip() -> None:
    assert decode(encode(C)) == C and len(encode(C)) == 43
    assert decode(encode(C) + "=") == C
    import base64

    assert decode(base64.b64encode(C).decode()) == C  # standard base64 too
    assert decode("not a key") is None and decode("A" * 43 + "!") is None
    host, port = address(R, C)
    assert port == 0 and ":" not in host and keys_of(host) == (R, C)
    assert keys_of("nodot") is None and keys_of(encode(R) + ".x") is None


def test_wrap_makes_a_frame_from_us_to_the_relay() -> None:
    c = relay(C)
    frame = wire.parse(c.wrap(R, E, b"datagram"))
    assert frame == wire.Frame(overlay.overlay_address(C), wire.DEFAULT_TTL, E, C, b"datagram")
