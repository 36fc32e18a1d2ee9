"""DNS settings in both config formats: wg-quick's `DNS =` (servers and search domains
mixed, as wg-quick reads them), TOML's `[interface] dns` and a provider's `[dns]`; a
bad entry is one sentence naming the file, the line and the key."""

import base64
from pathlib import Path

import pytest

from tidewire.node.config import ConfigError, load

KEY = base64.b64encode(bytes(range(32))).decode()
KEY2 = base64.b64encode(bytes(range(1, 33))).decode()

WG = f"""[Interface]
PrivateKey = {KEY}
Address = 10.99.0.2/32
DNS = 10.99.0.1, fd99::1
DNS = corp.example, lan.

[Peer]
PublicKey = {KEY2}
AllowedIPs = 0.0.0.0/0
"""


def test_wg_quick_dns_servers_and_search_domains(tmp_path: Path) -> None:
    p = tmp_path / "wg0.conf"
    p.write_text(WG)
    cfg = load(p)
    assert cfg.dns.servers == ["10.99.0.1", "fd99::1"]
    assert cfg.dns.search == ["corp.example", "lan."]
    assert not cfg.warnings


@pytest.mark.parametrize("bad", ["10.99.0.300", "bad domain", "-x.example", "a..b"])
def test_wg_quick_bad_dns_names_file_and_line(tmp_path: Path, bad: str) -> None:
    p = tmp_path / "wg0.conf"
    p.write_text(WG.replace("lan.", bad))
    with pytest.raises(ConfigError) as exc:
        load(p)
    message = str(exc.value)
    assert message.startswith(f"{p}:5: [Interface] DNS: '{bad}'"), message
    assert "neither an IP address nor a search domain" in message


def test_search_domains_need_a_server(tmp_path: Path) -> None:
    p = tmp_path / "wg0.conf"
    p.write_text(WG.replace("DNS = 10.99.0.1, fd99::1\n", ""))
    with pytest.raises(ConfigError, match=r"wg0.conf:4: \[Interface\] DNS: lists search"):
        load(p)


TOML = f"""[interface]
name = "tw1"
private_key = "{KEY}"
dns = ["10.99.0.1", "example.org"]

[dns]
resolver = true
upstream = ["9.9.9.9", "[2620:fe::fe]:5353", "203.0.113.2:53"]
"""


def test_toml_dns_and_provider_resolver(tmp_path: Path) -> None:
    p = tmp_path / "n.toml"
    p.write_text(TOML)
    cfg = load(p)
    assert cfg.dns.servers == ["10.99.0.1"] and cfg.dns.search == ["example.org"]
    assert cfg.dns.resolver
    assert cfg.dns.upstream == [("9.9.9.9", 53), ("2620:fe::fe", 5353), ("203.0.113.2", 53)]


def test_defaults_change_nothing(tmp_path: Path) -> None:
    p = tmp_path / "n.toml"
    p.write_text(TOML.split("dns = ")[0])
    cfg = load(p)
    assert cfg.dns.servers == [] and cfg.dns.search == [] and not cfg.dns.resolver


@pytest.mark.parametrize(
    ("old", "new", "line", "key", "words"),
    [
        ('"example.org"', '"ex ample"', 4, "[interface] dns", "neither an IP address"),
        ('"10.99.0.1", ', "", 4, "[interface] dns", "no server address"),
        ("resolver = true", 'resolver = "yes"', 7, "[dns] resolver", "true or false"),
        ('"9.9.9.9"', '"dns.google"', 8, "[dns] upstream", "not a resolver address"),
        ("resolver = true", "listen = 1", 7, "[dns] listen", "unknown key"),
    ],
)
def test_toml_dns_errors(
    tmp_path: Path, old: str, new: str, line: int, key: str, words: str
) -> None:
    p = tmp_path / "n.toml"
    p.write_text(TOML.replace(old, new, 1))
    with pytest.raises(ConfigError) as exc:
        load(p)
    assert str(exc.value).startswith(f"{p}:{line}: {key}: "), str(exc.value)
    assert words in str(exc.value)
