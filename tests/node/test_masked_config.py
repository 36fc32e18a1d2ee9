"""The `listen` and `endpoints` keys (node/config): URLs with a scheme, udp:// or masked://;
a peer uses its first candidate; every mistake names the file, the line and the key."""

import base64
from pathlib import Path

import pytest

from tidewire.node import control
from tidewire.node.config import ConfigError, load
from tidewire.node.config.system import check_system
from tidewire.node.requests import peer_spec_from_request

KEY = base64.b64encode(bytes(range(32))).decode()
KEY2 = base64.b64encode(bytes(range(1, 33))).decode()


def toml(tmp_path: Path, interface: str = "", peer: str = "", tail: str = "") -> Path:
    p = tmp_path / "tw0.toml"
    p.write_text(
        f'[interface]\nprivate_key = "{KEY}"\n{interface}\n'
        f'[[peer]]\npublic_key = "{KEY2}"\n{peer}\n{tail}'
    )
    return p


def test_listen_gives_a_udp_and_a_masked_port(tmp_path: Path) -> None:
    cfg = load(toml(tmp_path, 'listen = ["udp://0.0.0.0:51820", "masked://[::]:8443"]'))
    assert (cfg.listen_port, cfg.masked_port) == (51820, 8443)
    assert (load(toml(tmp_path, "listen_port = 5")).masked_port) is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('listen = ["masked://0.0.0.0"]', "is not HOST:PORT"),
        ('listen = ["masked://0.0.0.0:0"]', "port 0 is not in 1-65535"),
        ('listen = ["quic://0.0.0.0:443"]', "unknown scheme 'quic://'"),
        ('listen = ["0.0.0.0:8443"]', "needs a scheme"),
        ('listen = ["masked://10.0.0.1:8443"]', "only 0.0.0.0 or [::]"),
        ('listen = ["masked://0.0.0.0:1", "masked://0.0.0.0:2"]', "a second masked://"),
        ('listen_port = 1\nlisten = ["udp://0.0.0.0:2"]', "not both"),
    ],
)
def test_a_bad_listen_entry_is_named(tmp_path: Path, line: str, message: str) -> None:
    where = f"tw0.toml:{3 + line.count(chr(10))}: [interface] listen: "  # the listen line
    with pytest.raises(ConfigError) as info:
        load(toml(tmp_path, line))
    assert where in str(info.value)
    assert message in str(info.value)


def test_endpoints_are_ordered_candidates_and_the_first_is_used(tmp_path: Path) -> None:
    cfg = load(
        toml(tmp_path, peer='endpoints = ["masked://203.0.113.5:8443", "203.0.113.5:51820"]')
    )
    [peer] = cfg.peers
    assert peer.endpoint == "masked://203.0.113.5:8443"
    assert peer.fallbacks == ["203.0.113.5:51820"]  # canonical: udp has no scheme


def test_the_first_candidate_resolves_and_keeps_its_scheme(tmp_path: Path) -> None:
    cfg = load(toml(tmp_path, peer='endpoints = ["masked://provider.example:8443"]'))
    check_system(
        cfg,
        exit_enabled=False,
        interface_exists=lambda name: True,
        resolve=lambda host, port: ("2001:db8::5", port),
    )
    assert cfg.peers[0].endpoint == "masked://[2001:db8::5]:8443"


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ('endpoints = ["ftp://1.2.3.4:5"]', "unknown scheme 'ftp://'"),
        ('endpoints = ["masked://1.2.3.4"]', "is not HOST:PORT"),
        ("endpoints = []", "at least one"),
        ('endpoints = ["masked://1.2.3.4:5", 7]', "must be a list of strings"),
        ('endpoint = "1.2.3.4:5"\nendpoints = ["1.2.3.4:5"]', "not both"),
        ('mode = "wireguard"\nendpoints = ["masked://1.2.3.4:5"]', "can only use udp://"),
        ('endpoints = ["tcp://203.0.113.5"]', "is not HOST:PORT"),
        ('endpoints = ["tls://203.0.113.5:0"]', "port 0 is not in 1-65535"),
        ('endpoints = ["tcps://203.0.113.5:1"]', "unknown scheme 'tcps://'"),
        ('mode = "wireguard"\nendpoints = ["tls://1.2.3.4:5"]', "can only use udp://"),
    ],
)
def test_a_bad_endpoints_entry_is_named(tmp_path: Path, lines: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(toml(tmp_path, peer=lines))
    text = str(info.value)
    assert "[[peer]] #1 endpoints: " in text and message in text
    line = 6 + lines.count("\n")  # the endpoints line: after the header, key and other lines
    assert text.startswith(f"{tmp_path / 'tw0.toml'}:{line}:")


def test_peer_add_takes_a_masked_endpoint_but_not_for_a_wireguard_peer() -> None:
    req = {"public_key": KEY2, "endpoint": "masked://198.51.100.1:8443"}
    assert peer_spec_from_request(req).endpoint == "masked://198.51.100.1:8443"
    with pytest.raises(control.RequestError, match="can only use udp://"):
        peer_spec_from_request({**req, "mode": "wireguard"})
    with pytest.raises(control.RequestError, match="unknown scheme"):
        peer_spec_from_request({**req, "endpoint": "quic://198.51.100.1:8443"})


def test_endpoint_stays_one_udp_host_port(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"#1 endpoint: .*put URLs in endpoints"):
        load(toml(tmp_path, peer='endpoint = "masked://1.2.3.4:5"'))
