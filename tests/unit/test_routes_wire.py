"""Route messages on the control channel (protocol/control/routes.py).

The byte vectors are this project's own format, written out by hand from the tables
in docs/protocol/routes.md (the source of these known answers); everything else is
round trips and random bytes, which must only ever be a RemoteProtocolError.
"""

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidewire.node.core import overlay
from tidewire.node.core.control_plane import ControlPlane
from tidewire.protocol.control import channel
from tidewire.protocol.control import routes as wire
from tidewire.protocol.errors import RemoteProtocolError

P = bytes(range(32))
R = bytes(range(32, 64))


@pytest.mark.parametrize(
    ("msg", "hexbytes"),
    [
        (wire.RouteHello(0x0102, 400, 0x0A0B0C0D), "5457 0110 0102 0190 0a0b0c0d"),
        (wire.Ihu(256, 1200, 1, 2, 3), "5457 0111 0100 04b0 00000001 00000002 00000003"),
        (wire.RouteRequest(None), "5457 0113"),
        (wire.SeqnoRequest(7, 64, P, R), "5457 0114 0007 40" + P.hex() + R.hex()),
        (
            wire.Update(1600, (wire.UpdateEntry(P, 9, 0xFFFF, P), wire.UpdateEntry(P, 9, 300, R))),
            "5457 0112 0640 02"
            + "00"
            + P.hex()
            + "0009 ffff"
            + "01"
            + P.hex()
            + "0009 012c"
            + R.hex(),
        ),
    ],
)
def test_known_bytes(msg: wire.RouteMessage, hexbytes: str) -> None:
    data = bytes.fromhex(hexbytes.replace(" ", ""))
    assert channel.encode(msg) == data
    assert channel.decode(data) == msg


keys = st.binary(min_size=32, max_size=32)
u16 = st.integers(0, 0xFFFF)
entries = st.builds(wire.UpdateEntry, keys, u16, u16, keys) | st.builds(
    lambda k, s, m: wire.UpdateEntry(k, s, m, k), keys, u16, u16
)


@given(entries=st.lists(entries, max_size=40), interval=u16)
def test_packed_updates_fit_and_round_trip(entries: list[wire.UpdateEntry], interval: int) -> None:
    msgs = wire.pack_updates(entries, interval=interval)
    got: list[wire.UpdateEntry] = []
    for m in msgs:
        data = channel.encode(m)
        assert len(data) <= channel.MAX_SIZE
        decoded = channel.decode(data)
        assert isinstance(decoded, wire.Update)
        got.extend(decoded.entries)
    assert got == entries


@given(kind=st.sampled_from(sorted(wire.KINDS)), body=st.binary(max_size=600))
def test_random_bodies_are_only_remote_errors(kind: int, body: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        msg = wire.decode_body(kind, body)
        assert wire.encode_body(msg) == body  # what parses is exactly what it encodes


@given(data=st.binary(max_size=600))
def test_random_control_payloads_are_counted_drops(data: bytes) -> None:
    got: list[object] = []
    cp = ControlPlane(public_key=bytes(32), transmit=lambda k, p: None)
    for cls in wire.KIND_OF:
        cp.register(cls, lambda key, msg, *, now: got.append(msg))
    peer = bytes([1]) * 32
    packet = overlay.build(cp.overlay_of(peer), cp.local_overlay, b"TW\x01" + data)
    cp.receive(peer, packet, now=0.0)
    assert len(got) + sum(cp.drops.values()) == 1


def test_bad_flags_and_hop_count_zero_are_refused() -> None:
    entry = b"\x02" + P + b"\x00\x01\x00\x02"
    with pytest.raises(RemoteProtocolError) as err:
        wire.decode_body(wire.UPDATE, b"\x06\x40\x01" + entry)
    assert err.value.reason == "route_flags"
    with pytest.raises(RemoteProtocolError) as err:
        wire.decode_body(wire.SEQNO_REQUEST, b"\x00\x07\x00" + P + R)
    assert err.value.reason == "route_hop_count"
