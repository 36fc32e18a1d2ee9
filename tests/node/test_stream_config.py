"""The tcp:// and tls:// listeners and endpoints and the [tls] table (node/config): every
mistake names the file, the line and the key (bad URLs: test_masked_config.py); the same
URLs work in `peer add`."""

from pathlib import Path

import pytest

from tidewire.node import control
from tidewire.node.config import ConfigError, load
from tidewire.node.requests import peer_spec_from_request

from .test_masked_config import KEY2, toml

LISTEN = (
    'listen = ["udp://0.0.0.0:51820", "masked://0.0.0.0:8443", "tcp://0.0.0.0:8443",'
    ' "tls://0.0.0.0:443"]'
)


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


def test_peer_add_takes_the_same_urls() -> None:
    spec = peer_spec_from_request({"public_key": KEY2, "endpoint": "tls://provider.example:443"})
    assert spec.endpoint == "tls://provider.example:443"
    with pytest.raises(control.RequestError, match="unknown scheme"):
        peer_spec_from_request({"public_key": KEY2, "endpoint": "ftp://provider.example:21"})


def test_an_mtu_beyond_one_stream_frame_is_refused_when_a_stream_skin_is_used(
    tmp_path: Path,
) -> None:
    assert load(toml(tmp_path, "mtu = 65503\n" + LISTEN)).mtu == 65503
    assert load(toml(tmp_path, "mtu = 65535")).mtu == 65535  # no stream skin: no limit
    with pytest.raises(ConfigError, match=r"tw0.toml:3: \[interface\] mtu: 65504 is more"):
        load(toml(tmp_path, "mtu = 65504", peer='endpoints = ["tls://203.0.113.5:443"]'))
