"""`[nat]`: punch, mediate and keepalive, all on by default; a bad value is one sentence
naming the file, the line and the key. A peer's own `persistent_keepalive` is marked as
set, so the automatic keepalive never overrides it."""

import base64
from pathlib import Path

import pytest

from tidewire.node.config import ConfigError, NatSpec, load

KEY = base64.b64encode(bytes(range(32))).decode()
PEER = base64.b64encode(bytes([7]) * 32).decode()


def config(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "tw0.toml"
    p.write_text(f'[interface]\nprivate_key = "{KEY}"\n\n{body}\n')
    return p


def test_defaults_are_on(tmp_path: Path) -> None:
    assert load(config(tmp_path, "")).nat == NatSpec(punch=True, mediate=True, keepalive=25)


def test_the_keys_are_read(tmp_path: Path) -> None:
    cfg = load(config(tmp_path, "[nat]\npunch = false\nmediate = false\nkeepalive = 0"))
    assert cfg.nat == NatSpec(punch=False, mediate=False, keepalive=0)


BAD = {
    "punch = 1": "punch: must be true or false",
    "keepalive = 70000": "keepalive: must be an integer from 0 to 65535",
    "relay = true": "relay: unknown key",
}


def test_bad_values_name_file_line_and_key(tmp_path: Path) -> None:
    for body, words in BAD.items():
        with pytest.raises(ConfigError, match=r"tw0\.toml:5: \[nat\] " + words):
            load(config(tmp_path, f"[nat]\n{body}"))


def test_a_configured_keepalive_is_marked_as_set(tmp_path: Path) -> None:
    peers = (
        f'[[peer]]\npublic_key = "{PEER}"\npersistent_keepalive = 0\n\n'
        f'[[peer]]\npublic_key = "{base64.b64encode(bytes([8]) * 32).decode()}"\n'
    )
    cfg = load(config(tmp_path, peers))
    assert [p.keepalive_set for p in cfg.peers] == [True, False]


def test_a_peer_reached_only_through_relays_is_punched_to(tmp_path: Path) -> None:
    """relay:// endpoints are no direct endpoint: NAT traversal still looks the peer up
    (node/nat.py), so a punched path can take over from the relay."""
    from tidewire.node.nat import _direct

    relay = "relay://" + base64.urlsafe_b64encode(bytes([9]) * 32).decode().rstrip("=")
    bodies = {
        "": False,
        f'endpoints = ["{relay}"]': False,
        f'endpoints = ["{relay}", "198.51.100.7:51820"]': True,
        'endpoint = "198.51.100.7:51820"': True,
    }
    for body, direct in bodies.items():
        cfg = load(config(tmp_path, f'[[peer]]\npublic_key = "{PEER}"\nmode = "native"\n{body}'))
        assert _direct(cfg.peers[0]) is direct, body
