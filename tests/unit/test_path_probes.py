"""The path probe messages (protocol/control/channel.py, docs/protocol/path-probes.md) and
the RTT estimator behind them (node/core/paths/estimator.py)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidewire.node.core import overlay
from tidewire.node.core.control_plane import ControlPlane
from tidewire.node.core.paths.estimator import LossWindow, RttEstimator
from tidewire.node.core.paths.manager import Paths
from tidewire.protocol.control import channel
from tidewire.protocol.control.channel import PathProbe, PathProbeReply
from tidewire.protocol.errors import RemoteProtocolError

from .helpers import SeededRandom, keypair


def test_probe_messages_round_trip_and_have_fixed_layouts() -> None:
    probe = PathProbe(probe_id=0x01020304, timestamp_us=0x1122334455667788, active=1)
    wire = channel.encode(probe)
    # magic "TW", version 1, type 5; id, timestamp (big-endian), the active flag
    assert wire == b"TW\x01\x05" + bytes.fromhex("01020304 1122334455667788 01")
    assert channel.decode(wire) == probe
    reply = PathProbeReply(probe_id=7, echo_us=9)
    assert channel.encode(reply) == b"TW\x01\x06" + bytes.fromhex("00000007 0000000000000009")
    assert channel.decode(channel.encode(reply)) == reply


def test_a_probe_flag_other_than_0_or_1_is_refused() -> None:
    with pytest.raises(RemoteProtocolError) as exc:
        channel.decode(b"TW\x01\x05" + bytes(12) + b"\x02")
    assert exc.value.reason == "control_probe_flag"


@given(body=st.binary(max_size=40), kind=st.sampled_from([5, 6]))
def test_probe_parsing_of_random_bytes_refuses_or_parses(body: bytes, kind: int) -> None:
    data = b"TW\x01" + bytes((kind,)) + body
    try:
        msg = channel.decode(data)
    except RemoteProtocolError:
        return
    assert isinstance(msg, PathProbe | PathProbeReply)
    assert channel.encode(msg) == data


@given(body=st.binary(max_size=40), kind=st.sampled_from([5, 6]))
def test_random_probes_through_the_control_plane_are_counted_drops(body: bytes, kind: int) -> None:
    """A peer's garbage, or a reply to no probe of ours, is a counted drop, never raised."""
    _, pub = keypair("me")
    _, other = keypair("them")
    plane = ControlPlane(public_key=pub, transmit=lambda k, p: None)
    paths = Paths(rng=SeededRandom("p"))
    plane.register(PathProbe, paths.on_probe)
    plane.register(PathProbeReply, paths.on_reply)
    payload = b"TW\x01" + bytes((kind,)) + body
    packet = overlay.build(plane.overlay_of(other), plane.local_overlay, payload)
    plane.receive(other, packet, now=1.0)
    assert sum(plane.drops.values()) == 1  # no path set for this peer: nothing accepted
    assert not paths.replies


def test_rtt_follows_rfc_6298() -> None:
    # RFC 6298 section 2.2 and 2.3, by hand: R1 = 0.1 gives SRTT 0.1, RTTVAR 0.05;
    # R2 = 0.3: RTTVAR = 3/4 * 0.05 + 1/4 * |0.1 - 0.3| = 0.0875, SRTT = 7/8 * 0.1 + 1/8 * 0.3
    rtt = RttEstimator()
    assert rtt.probe_timeout() == 1.0  # section 2.1: before any sample
    rtt.sample(0.1)
    assert rtt.srtt == pytest.approx(0.1)
    assert rtt.rttvar == pytest.approx(0.05)
    rtt.sample(0.3)
    assert rtt.rttvar == pytest.approx(0.0875)
    assert rtt.srtt == pytest.approx(0.125)
    assert rtt.probe_timeout() == pytest.approx(0.125 + 4 * 0.0875)


def test_loss_is_the_share_lost_in_the_window() -> None:
    window = LossWindow(size=4)
    assert window.loss is None
    for lost in (True, False, False, False, True):
        window.record(lost=lost)
    assert window.loss == 0.25  # the oldest outcome left the window
