"""NAT traversal's control messages (protocol/control/nat.py).

The byte vectors are this project's own format, written out by hand from the table in
docs/protocol/nat.md (the source of these known answers); the rest is round trips and
random bytes, which must only ever be a RemoteProtocolError or a counted drop.
"""

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidewire.node.core import overlay
from tidewire.node.core.control_plane import ControlPlane
from tidewire.protocol.control import channel
from tidewire.protocol.control import nat as wire
from tidewire.protocol.errors import RemoteProtocolError

K = bytes(range(32))


@pytest.mark.parametrize(
    ("msg", "hexbytes"),
    [
        (wire.NatLookup(K), "5457 0128" + K.hex()),
        (wire.NatObserved(("192.0.2.7", 51820)), "5457 012a 04 c0000207 ca6c"),
        (
            wire.NatObserved(("2001:db8::1", 1)),
            "5457 012a 06 20010db8000000000000000000000001 0001",
        ),
        (
            wire.NatIntroduce(K, (("198.51.100.2", 4500), ("2001:db8::2", 4501))),
            "5457 0129" + K.hex() + "02 04 c6336402 1194 06 20010db8000000000000000000000002 1195",
        ),
    ],
)
def test_known_bytes(msg: wire.NatMessage, hexbytes: str) -> None:
    data = bytes.fromhex(hexbytes.replace(" ", ""))
    assert channel.encode(msg) == data
    assert channel.decode(data) == msg


def test_a_flood_of_endpoints_is_refused_whole() -> None:
    five = bytes([5]) + (b"\x04\xc0\x00\x02\x07\x00\x01") * 5
    with pytest.raises(RemoteProtocolError, match="nat_endpoints"):
        channel.decode(b"TW\x01\x29" + K + five)
    with pytest.raises(ValueError):
        channel.encode(wire.NatIntroduce(K, (("192.0.2.1", 1),) * 5))


hosts = st.ip_addresses().map(str)
endpoints = st.tuples(hosts, st.integers(0, 0xFFFF))


@given(key=st.binary(min_size=32, max_size=32), eps=st.lists(endpoints, min_size=1, max_size=4))
def test_introductions_round_trip(key: bytes, eps: list[tuple[str, int]]) -> None:
    msg = wire.NatIntroduce(key, tuple(eps))
    assert channel.decode(channel.encode(msg)) == msg


@given(kind=st.sampled_from([40, 41, 42]), body=st.binary(max_size=600))
def test_random_bodies_are_only_remote_errors(kind: int, body: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        msg = channel.decode(b"TW\x01" + bytes([kind]) + body)
        assert channel.encode(msg)[4:] == body  # what parses is exactly what it encodes


@given(data=st.binary(max_size=600))
def test_random_control_payloads_are_counted_drops(data: bytes) -> None:
    got: list[object] = []
    cp = ControlPlane(public_key=bytes(32), transmit=lambda k, p: None)
    for cls in (wire.NatLookup, wire.NatIntroduce, wire.NatObserved):
        cp.register(cls, lambda key, msg, *, now: got.append(msg))
    peer = bytes([1]) * 32
    packet = overlay.build(cp.overlay_of(peer), cp.local_overlay, b"TW\x01" + data)
    cp.receive(peer, packet, now=0.0)
    assert len(got) + sum(cp.drops.values()) == 1
