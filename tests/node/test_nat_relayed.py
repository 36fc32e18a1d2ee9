"""NAT traversal for a peer reached only through a relay (node/nat.py): it is punched
to only once the node is behind a NAT (a punch hands the far end our address, which the
relayed path hides), and a punch never moves the peer off its relayed path."""

import base64
import socket
from collections.abc import Iterator
from pathlib import Path as FilePath

import pytest

from tidewire.node.config import NatSpec, load
from tidewire.node.core.relay import address
from tidewire.node.datapath import DataPath
from tidewire.node.nat import NatTraversal
from tidewire.protocol.link.device import Device
from tidewire.protocol.link.peer import PeerConfig
from tidewire.protocol.link.profile import Mode
from tidewire.protocol.types import RELAY, UDP, Path

from ..unit.helpers import SeededRandom, keypair
from .test_datapath import Recorder

LOCAL = ("10.0.1.2", 51820)


Made = tuple[NatTraversal, DataPath, bytes, bytes]


@pytest.fixture
def made(tmp_path: FilePath) -> Iterator[Made]:
    """A's NAT traversal with one peer, B, listed with the one endpoint relay://M."""
    private, _ = keypair("nat-relayed-a")
    _, peer_key = keypair("nat-relayed-b")
    _, relay_key = keypair("nat-relayed-m")
    device = Device(private_key=private, rng=SeededRandom("a"))
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.setblocking(False)
    dp = DataPath(
        device=device,
        tun_fd=ours.fileno(),
        transports={UDP: Recorder(), RELAY: Recorder()},
        policy=None,
        persist_timestamp=lambda key, stamp: None,
    )
    nat = NatTraversal(
        datapath=dp, spec=NatSpec(punch=True, mediate=True, keepalive=25), local={LOCAL}, now=0.0
    )
    relayed = "relay://" + base64.urlsafe_b64encode(relay_key).decode().rstrip("=")
    own = base64.b64encode(bytes(range(32))).decode()
    text = (
        f'[interface]\nprivate_key = "{own}"\n\n[[peer]]\n'
        f'public_key = "{base64.b64encode(peer_key).decode()}"\nendpoints = ["{relayed}"]\n'
    )
    (tmp_path / "tw0.toml").write_text(text)
    [spec] = load(tmp_path / "tw0.toml").peers
    nat.add_peer(spec, now=0.0)
    yield nat, dp, peer_key, relay_key
    ours.close()
    theirs.close()


def test_a_relay_only_peer_is_punched_to_only_behind_a_nat(made: Made) -> None:
    nat, _, peer_key, relay_key = made
    assert peer_key not in nat.core.puncher.targets  # not behind a NAT: our address stays hidden
    nat.core.detector.observed(relay_key, LOCAL)
    nat._act(now=1.0)
    assert not nat.core.behind_nat and peer_key not in nat.core.puncher.targets
    nat.core.detector.observed(relay_key, ("198.51.100.2", 40001))  # a NAT in front of us
    nat._act(now=2.0)
    assert nat.core.behind_nat and peer_key in nat.core.puncher.targets


def test_a_punch_does_not_move_a_peer_off_its_relayed_path(made: Made) -> None:
    nat, dp, peer_key, relay_key = made
    relayed = Path(RELAY, address(relay_key, peer_key))
    dp.device.add_peer(PeerConfig(public_key=peer_key, path=relayed, mode=Mode.NATIVE))
    nat._punch(peer_key, Path(UDP, ("192.0.2.2", 40002)), now=1.0)
    assert dp.device.peers[peer_key].path == relayed
    # a peer with no path at all still takes the punched one (two cone NATs, no relay)
    other = keypair("nat-relayed-c")[1]
    dp.device.add_peer(PeerConfig(public_key=other, mode=Mode.NATIVE))
    nat._punch(other, Path(UDP, ("192.0.2.3", 40003)), now=1.0)
    assert dp.device.peers[other].path == Path(UDP, ("192.0.2.3", 40003))
