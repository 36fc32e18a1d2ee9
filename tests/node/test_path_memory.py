"""The winning path per network (node/path_memory.py): kept across restarts, bounded, and
a damaged file is a fresh start rather than an error."""

from pathlib import Path

import trio

from tidewire.node.path_memory import MAX_NETWORKS, PathMemory
from tidewire.protocol.types import MASKED, UDP
from tidewire.protocol.types import Path as LinkPath

KEY = bytes(range(32))
NET = "198.51.100.2 via 198.51.100.1"


def test_the_winner_survives_a_restart_on_the_same_network_only(tmp_path: Path) -> None:
    memory = PathMemory(tmp_path)
    assert memory.remember(NET, KEY, LinkPath(MASKED, ("203.0.113.5", 8443)))
    assert not memory.remember(NET, KEY, LinkPath(MASKED, ("203.0.113.5", 8443)))  # no change
    trio.run(memory.save)
    again = PathMemory(tmp_path)
    assert again.winner(NET, KEY) == "masked://203.0.113.5:8443"
    assert again.winner("192.0.2.7 via 192.0.2.1", KEY) is None  # another network
    assert again.winner(None, KEY) is None  # no route known: nothing to go by
    again.remember(NET, KEY, LinkPath(UDP, ("203.0.113.5", 51820)))
    assert again.winner(NET, KEY) == "udp://203.0.113.5:51820"  # udp spelt out as in config


def test_networks_are_bounded_and_the_oldest_goes_first(tmp_path: Path) -> None:
    memory = PathMemory(tmp_path)
    path = LinkPath(UDP, ("203.0.113.5", 51820))
    for i in range(MAX_NETWORKS + 3):
        memory.remember(f"10.0.{i}.2 via 10.0.{i}.1", KEY, path)
    assert len(memory.known) == MAX_NETWORKS
    assert memory.winner("10.0.0.2 via 10.0.0.1", KEY) is None
    assert memory.winner(f"10.0.{MAX_NETWORKS + 2}.2 via 10.0.{MAX_NETWORKS + 2}.1", KEY)


def test_a_damaged_file_is_a_fresh_start(tmp_path: Path) -> None:
    for text in ("{not json", "[1, 2]", '{"net": 5}', ""):
        (tmp_path / "paths.json").write_text(text)
        assert PathMemory(tmp_path).winner("net", KEY) is None
