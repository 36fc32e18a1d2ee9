"""Property tests: hostile bytes into every parser and into the receive path.

Any byte string yields a counted drop (or, for the bare parsers, a
RemoteProtocolError), never another exception and never a state change.
"""

import contextlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tidewire.protocol.errors import RemoteProtocolError
from tidewire.protocol.link import messages
from tidewire.protocol.link.device import Device
from tidewire.protocol.link.load import HandshakeLoad
from tidewire.protocol.link.peer import Peer
from tidewire.protocol.types import UDP, Path

from .sim import pair

PARSERS = [
    messages.parse_initiation,
    messages.parse_response,
    messages.parse_cookie_reply,
]


@pytest.mark.parametrize("parse", PARSERS, ids=lambda f: f.__name__)
@given(data=st.binary(max_size=300))
def test_parsers_raise_only_remote_errors(parse: Any, data: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        parse(data)


@given(
    kind=st.sampled_from([1, 2, 3]),
    body=st.binary(min_size=0, max_size=200),
)
def test_parsers_on_the_right_type_word(kind: int, body: bytes) -> None:
    data = kind.to_bytes(4, "little") + body
    for parse in PARSERS:
        with contextlib.suppress(RemoteProtocolError):
            parse(data)


@given(data=st.binary(max_size=64))
def test_message_type_is_total(data: bytes) -> None:
    assert messages.message_type(data) in (0, 1, 2, 3, 4)


def _peer_state(peer: Peer) -> tuple[object, ...]:
    hs = peer.handshake
    kps = tuple(
        (id(kp), kp.send_counter, kp.replay.last, tuple(kp.replay.blocks), kp.created)
        for kp in (peer.previous, peer.current, peer.next)
        if kp is not None
    )
    return (
        peer.path,
        hs.state,
        hs.local_index,
        hs.remote_index,
        hs.last_timestamp,
        hs.last_initiation_consumption,
        hs.last_sent_initiation,
        None if hs.sym is None else (hs.sym.ck, hs.sym.h),
        kps,
        peer.retransmit,
        peer.send_keepalive,
        peer.new_handshake,
        peer.zero_keys,
        peer.persistent_keepalive_at,
        peer.handshake_attempts,
        peer.need_another_keepalive,
        len(peer.staged),
        peer.rx_bytes,
        peer.tx_bytes,
        peer.cookie.cookie,
        peer.cookie.last_mac1,
    )


def device_state(dev: Device) -> tuple[object, ...]:
    return (
        tuple(sorted(dev.index)),
        tuple(_peer_state(p) for p in dev.peers.values()),
        len(dev._outbox),
        len(dev._events),
        tuple((m, c.secret) for m, c in dev.checkers.items()),
    )


def _established() -> tuple[Device, Device, list[bytes]]:
    sim, a, b = pair()
    sim.send(a, b, bytes(64))
    sim.run_until(1.0)
    sim.send(b, a, bytes(64))
    sim.run_until(2.0)
    assert b.received and a.received
    return a.device, b.device, [s.data for s in sim.log]


A_DEV, B_DEV, CAPTURED = _established()
# Hundreds of handshake messages at one `now` would put the devices under load, and
# then a cookie reply is the right answer (test_link.py checks it); here the point is
# that nothing else changes, so the load meter never trips.
for _dev in (A_DEV, B_DEV):
    _dev.load = HandshakeLoad(threshold=1 << 60)


def _mutations() -> st.SearchStrategy[bytes]:
    """Random bytes, and captured real messages with bytes flipped, cut or extended."""
    real = st.sampled_from(CAPTURED)
    flipped = st.tuples(real, st.integers(0, 10_000), st.integers(1, 255)).map(
        lambda t: (
            t[0][: t[1] % len(t[0])]
            + bytes([t[0][t[1] % len(t[0])] ^ t[2]])
            + t[0][t[1] % len(t[0]) + 1 :]
        )
    )
    cut = st.tuples(real, st.integers(0, 200)).map(lambda t: t[0][: t[1]])
    extended = st.tuples(real, st.binary(min_size=1, max_size=20)).map(lambda t: t[0] + t[1])
    typed = st.tuples(st.sampled_from([1, 2, 3, 4]), st.binary(max_size=200)).map(
        lambda t: t[0].to_bytes(4, "little") + t[1]
    )
    return st.one_of(st.binary(max_size=2000), flipped, cut, extended, typed)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(data=_mutations())
def test_receive_path_drops_and_counts_without_changing_state(data: bytes) -> None:
    for dev in (A_DEV, B_DEV):
        before = device_state(dev)
        drops_before = sum(dev.drops.values())
        result = dev.receive_datagram(data, Path(UDP, ("203.0.113.9", 9)), now=3.0)
        assert result is None
        assert sum(dev.drops.values()) == drops_before + 1
        assert device_state(dev) == before


def test_captured_messages_replayed_are_all_refused() -> None:
    for data in CAPTURED:
        for dev in (A_DEV, B_DEV):
            before = device_state(dev)
            assert dev.receive_datagram(data, Path(UDP, ("203.0.113.9", 9)), now=3.0) is None
            assert device_state(dev) == before
