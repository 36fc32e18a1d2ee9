"""Config files: wg-quick's format and tidewire's TOML, told apart by content; every error
names the file, the line and the key."""

import base64
from pathlib import Path

import pytest

from tidewire.node.config import ConfigError, load
from tidewire.protocol.link.profile import Mode

KEY = base64.b64encode(bytes(range(32))).decode()
KEY2 = base64.b64encode(bytes(range(1, 33))).decode()


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


WG = f"""[Interface]
PrivateKey = {KEY}
ListenPort = 51820
Address = 10.0.0.1/24, fd00::1/64
DNS = 1.1.1.1
PostUp = iptables -A FORWARD -j ACCEPT

[Peer]
PublicKey = {KEY2}
PresharedKey = {KEY}
AllowedIPs = 10.0.0.2/32
AllowedIPs = fd00::2/128
Endpoint = [2001:db8::5]:51820
PersistentKeepalive = 25
"""


def test_wg_quick_file(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, "wg7.conf", WG))
    assert cfg.format == "wg-quick" and cfg.name == "wg7" and cfg.listen_port == 51820
    assert [str(a) for a in cfg.addresses] == ["10.0.0.1/24", "fd00::1/64"]
    [peer] = cfg.peers
    assert peer.mode is Mode.WIREGUARD and peer.persistent_keepalive == 25
    assert [str(n) for n in peer.allowed_ips] == ["10.0.0.2/32", "fd00::2/128"]
    assert peer.endpoint == "[2001:db8::5]:51820"
    assert cfg.warnings == []  # PostUp is honoured now (see test_service_config.py)
    [hook] = cfg.service.hooks["post_up"]
    assert (hook.command, hook.line) == ("iptables -A FORWARD -j ACCEPT", 6)
    assert cfg.dns.servers == ["1.1.1.1"] and cfg.dns.search == []


TOML = f"""[interface]
name = "tw9"
private_key = "{KEY}"
address = ["10.0.0.1/24"]
listen_port = 51820
state_dir = "/tmp/tw-state"

[[peer]]
public_key = "{KEY2}"
allowed_ips = ["10.0.0.2/32"]
endpoint = "example.net:51820"

[exit]
enabled = true
allow = ["192.168.1.10/32 tcp:80"]
"""


def test_toml_file(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, "node.toml", TOML))
    assert cfg.format == "toml" and cfg.name == "tw9"
    assert cfg.peers[0].mode is Mode.NATIVE
    assert cfg.exit.enabled and str(cfg.exit.allow[0]) == "192.168.1.10/32 tcp:80"
    assert str(cfg.control_socket) == "/run/tidewire/tw9.sock"


def test_private_key_file(tmp_path: Path) -> None:
    (tmp_path / "priv.key").write_text(KEY + "\n")
    text = TOML.replace(f'private_key = "{KEY}"', 'private_key_file = "priv.key"')
    assert load(write(tmp_path, "n.toml", text)).private_key == bytes(range(32))


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "a.conf",
            WG.replace("ListenPort = 51820", "ListenPort = 99999"),
            "a.conf:3: [Interface] ListenPort: must be an integer from 0 to 65535",
        ),
        (
            "a.conf",
            WG.replace(f"PublicKey = {KEY2}", "PublicKey = nope"),
            "a.conf:9: [Peer] PublicKey: a key is 44 characters",
        ),
        (
            "a.conf",
            WG.replace("AllowedIPs = fd00::2/128", "AllowedIPs = fd00::zz/128"),
            "a.conf:12: [Peer] AllowedIPs: 'fd00::zz/128' is not an IP prefix",
        ),
        (
            "a.conf",
            WG.replace("Endpoint = [2001:db8::5]:51820", "Endpoint = nohost"),
            "a.conf:13: [Peer] Endpoint: 'nohost' is not HOST:PORT",
        ),
        (
            "a.conf",
            WG.replace("ListenPort", "ListenPrt"),
            "a.conf:3: [Interface] ListenPrt: unknown key",
        ),
        (
            "b.toml",
            TOML.replace('name = "tw9"', 'name = "this-name-is-far-too-long"'),
            "b.toml:2: [interface] name: must be 1-15 characters",
        ),
        (
            "b.toml",
            TOML.replace('allowed_ips = ["10.0.0.2/32"]', 'allowed_ips = ["10.0.0.300/32"]'),
            "b.toml:10: [[peer]] #1 allowed_ips: '10.0.0.300/32' is not an IP prefix",
        ),
        (
            "b.toml",
            TOML.replace('"192.168.1.10/32 tcp:80"', '"192.168.1.10/32 tcp:99999"'),
            "b.toml:15: [exit] allow: 'tcp:99999' is not a port",
        ),
        (
            "b.toml",
            TOML.replace("enabled = true", "enabled = 1"),
            "b.toml:14: [exit] enabled: must be true or false",
        ),
        (
            "b.toml",
            TOML + '\n[[peer]]\npublic_key = "' + KEY2 + '"\n',
            "b.toml:17: public key: this peer appears twice",
        ),
        ("b.toml", TOML.replace("[exit]", "[exit"), "b.toml:13: TOML:"),
        (
            "b.toml",
            TOML.replace("listen_port", "listen_prot"),
            "b.toml:5: [interface] listen_prot: unknown key",
        ),
    ],
)
def test_errors_name_file_line_and_key(tmp_path: Path, name: str, text: str, expected: str) -> None:
    path = write(tmp_path, name, text)
    with pytest.raises(ConfigError) as err:
        load(path)
    assert str(err.value).startswith(f"{tmp_path}/{expected}")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path / "nope.toml")
    assert "cannot be read" in str(err.value)
