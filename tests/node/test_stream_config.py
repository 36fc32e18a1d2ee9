"""The tcp:// and tls:// listeners and endpoints and the [tls] table (node/config): every
mistake names the file, the line and the key; the same URLs work in `peer add`."""

import base64
from pathlib import Path

import pytest

from tidewire.node import control
from tidewire.node.config import ConfigError, load
from tidewire.node.requests import peer_spec_from_request

KEY = base64.b64encode(bytes(range(32))).decode()
KEY2 = base64.b64encode(bytes(range(1, 33))).decode()
LISTEN = (
    'listen = ["udp://0.0.0.0:51820", "masked://0.0.0.0:8443", "tcp://0.0.0.0:8443",'
    ' "tls://0.0.0.0:443"]'
)


def toml(tmp_path: Path, interface: str = "", peer: str = "", tail: str = "") -> Path:
    p = tmp_path / "tw0.toml"
    p.write_text(
        f'[interface]\nprivate_key = "{KEY}"\n{interface}\n'
        f'[[peer]]\npublic_key = "{KEY2}"\n{peer}\n{tail}'
    )
    return p


def test_listen_gives_every_skin_its_port(tmp_path: Path) -> None:
    cfg = load(toml(tmp_path, LISTEN))
    ports = (cfg.listen_port, cfg.masked_port, cfg.tcp_port, cfg.tls_port)
    assert ports == (51820, 8443, 8443, 443)
    assert cfg.tls.certificate is None and cfg.tls.fallback is None  # self-signed, static page


def test_endpoints_take_tcp_and_tls_urls(tmp_path: Path) -> None:
    peer = 'endpoints = ["tcp://203.0.113.5:8443", "tls://provider.example:443"]'
    [spec] = load(toml(tmp_path, peer=peer)).peers
    assert spec.endpoint == "tcp://203.0.113.5:8443"
    assert spec.fallbacks == ["tls://provider.example:443"]


def test_the_tls_table(tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_text("cert")
    (tmp_path / "k.pem").write_text("key")
    tail = '[tls]\ncertificate = "c.pem"\nkey = "k.pem"\nfallback = "127.0.0.1:8080"\n'
    cfg = load(toml(tmp_path, LISTEN, tail=tail))
    assert cfg.tls.certificate == tmp_path / "c.pem" and cfg.tls.key == tmp_path / "k.pem"
    assert cfg.tls.fallback == ("127.0.0.1", 8080)


@pytest.mark.parametrize(
    ("table", "line", "message"),
    [
        ('certificate = "c.pem"', 8, "[tls] certificate: set both certificate and key"),
        ('certificate = "c.pem"\nkey = "nope.pem"', 9, "[tls] key: "),
        ('fallback = "example.net:80"', 8, "[tls] fallback: 'example.net' is not an IP"),
        ('fallback = "127.0.0.1:0"', 8, "[tls] fallback: needs a port"),
        ("fallback = 8080", 8, "[tls] fallback: must be an upstream web server"),
        ('page = "x"', 8, "[tls] page: unknown key"),
    ],
)
def test_a_bad_tls_table_is_named(tmp_path: Path, table: str, line: int, message: str) -> None:
    (tmp_path / "c.pem").write_text("cert")
    with pytest.raises(ConfigError) as info:
        load(toml(tmp_path, tail=f"[tls]\n{table}\n"))
    assert f"tw0.toml:{line}: {message}" in str(info.value)


@pytest.mark.parametrize(
    ("peer", "message"),
    [
        ('endpoints = ["tcp://203.0.113.5"]', "is not HOST:PORT"),
        ('endpoints = ["tls://203.0.113.5:0"]', "port 0 is not in 1-65535"),
        ('endpoints = ["tcps://203.0.113.5:1"]', "unknown scheme 'tcps://'"),
        ('mode = "wireguard"\nendpoints = ["tcp://203.0.113.5:1"]', "only use udp://"),
    ],
)
def test_a_bad_stream_url_names_file_line_and_key(tmp_path: Path, peer: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(toml(tmp_path, peer=peer))
    line = 6 + peer.count("\n")
    assert f"tw0.toml:{line}: [[peer]] #1 endpoints: " in str(info.value)
    assert message in str(info.value)


def test_peer_add_takes_the_same_urls() -> None:
    spec = peer_spec_from_request({"public_key": KEY2, "endpoint": "tls://provider.example:443"})
    assert spec.endpoint == "tls://provider.example:443"
    with pytest.raises(control.RequestError, match="unknown scheme"):
        peer_spec_from_request({"public_key": KEY2, "endpoint": "ftp://provider.example:21"})
