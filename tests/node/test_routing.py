"""The routing component (node/routing.py) and the `neighbour` flag of a peer.

Two components exchange route messages through two real control planes (overlay
packets, decoding, the per-type handlers) in virtual time; the config reader takes
`neighbour = true` on native peers and refuses it, with file, line and key, on a
WireGuard-mode peer.
"""

import base64
from collections.abc import Callable
from pathlib import Path

import pytest

from tidewire.node.config import ConfigError, load
from tidewire.node.core.control_plane import ControlPlane
from tidewire.node.routing import Routing
from tidewire.protocol.control import routes as wire
from tidewire.protocol.keys import encode_key

KA, KB = bytes([1]) * 32, bytes([2]) * 32


def test_two_components_learn_each_other_over_control_planes() -> None:
    planes: dict[bytes, ControlPlane] = {}
    inflight: list[tuple[bytes, bytes, bytes]] = []  # (to, from, packet)

    def sender(me: bytes) -> Callable[[bytes, bytes], None]:
        return lambda peer, pkt: inflight.append((peer, me, pkt))

    for me in (KA, KB):
        planes[me] = ControlPlane(public_key=me, transmit=sender(me))
    ra = Routing(public_key=KA, control=planes[KA], now=0.0, rng=bytes)
    rb = Routing(public_key=KB, control=planes[KB], now=0.0, rng=bytes)
    ra.add_neighbour(KB, now=0.0)
    rb.add_neighbour(KA, now=0.0)
    now = 0.0
    while now < 30.0:
        while inflight:
            to, frm, pkt = inflight.pop(0)
            planes[to].receive(frm, pkt, now=now)
        now += 0.5
        for r in (ra, rb):
            r.handle_timer(now=now)
    assert not planes[KA].drops and not planes[KB].drops
    [route] = ra.status()
    assert route["destination"] == encode_key(KB) and route["next_hop"] == encode_key(KB)
    assert route["metric"] == 256  # lossless, no RTT: one ETX hop
    assert rb.status()[0]["next_hop"] == encode_key(KA)


def test_routing_refuses_messages_from_a_peer_that_is_no_neighbour() -> None:
    plane = ControlPlane(public_key=KA, transmit=lambda peer, pkt: None)
    r = Routing(public_key=KA, control=plane, now=0.0, rng=bytes)
    sent: list[bytes] = []
    other = ControlPlane(public_key=KB, transmit=lambda peer, pkt: sent.append(pkt))
    other.send(KA, wire.RouteRequest(None))
    plane.receive(KB, sent[0], now=1.0)
    assert r.counters()["route_not_neighbour"] == 1


KEY = base64.b64encode(bytes(range(32))).decode()
KEY2 = base64.b64encode(bytes(range(1, 33))).decode()
TOML = f"""[interface]
name = "tw9"
private_key = "{KEY}"

[[peer]]
public_key = "{KEY2}"
mode = "MODE"
neighbour = true
"""


def test_neighbour_flag_on_a_native_peer(tmp_path: Path) -> None:
    path = tmp_path / "n.toml"
    path.write_text(TOML.replace("MODE", "native"))
    assert load(path).peers[0].neighbour


def test_neighbour_flag_on_a_wireguard_peer_names_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "n.toml"
    path.write_text(TOML.replace("MODE", "wireguard"))
    with pytest.raises(ConfigError) as err:
        load(path)
    assert str(err.value).startswith(f"{path}:8: [[peer]] #1 neighbour: needs mode")
