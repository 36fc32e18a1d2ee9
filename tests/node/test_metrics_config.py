"""`[metrics] listen`: an IP literal and a port, loopback by default; anything else is one
sentence with the file, the line and the key; a non-loopback address is a warning."""

import base64
from pathlib import Path

import pytest

from tidewire.node.config import ConfigError, load

KEY = base64.b64encode(bytes(range(32))).decode()


def config(tmp_path: Path, metrics: str) -> Path:
    p = tmp_path / "tw0.toml"
    p.write_text(f'[interface]\nprivate_key = "{KEY}"\n\n[metrics]\n{metrics}\n')
    return p


def test_no_metrics_table_means_no_endpoint(tmp_path: Path) -> None:
    p = tmp_path / "tw0.toml"
    p.write_text(f'[interface]\nprivate_key = "{KEY}"\n')
    assert load(p).metrics_listen is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [("127.0.0.1:9586", ("127.0.0.1", 9586)), ("[::1]:9586", ("::1", 9586))],
)
def test_loopback_listen_is_read_without_warning(
    tmp_path: Path, value: str, expected: tuple[str, int]
) -> None:
    cfg = load(config(tmp_path, f'listen = "{value}"'))
    assert cfg.metrics_listen == expected and cfg.warnings == []


def test_non_loopback_listen_is_allowed_with_a_warning(tmp_path: Path) -> None:
    cfg = load(config(tmp_path, 'listen = "0.0.0.0:9586"'))
    assert cfg.metrics_listen == ("0.0.0.0", 9586)
    [warning] = cfg.warnings
    assert warning.startswith(f"{tmp_path / 'tw0.toml'}:5: [metrics] listen: 0.0.0.0")
    assert "not a loopback address" in warning


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [
        ('listen = "localhost:9586"', "5: [metrics] listen: 'localhost' is not an IP address"),
        ('listen = "127.0.0.1"', "5: [metrics] listen: '127.0.0.1' is not ADDRESS:PORT"),
        ('listen = "127.0.0.1:99999"', "5: [metrics] listen: '99999' is not a port"),
        ('listen = "127.0.0.1:0"', "5: [metrics] listen: needs a port from 1 to 65535"),
        ('listen = "::1:9586"', "5: [metrics] listen: '::1:9586': write an IPv6 address in"),
        ("listen = 9586", "5: [metrics] listen: must be an address and port in quotes"),
        ('port = "9586"', "5: [metrics] port: unknown key (known: listen)"),
        ("", "4: [metrics] listen: is required"),
    ],
)
def test_bad_listen_is_one_sentence_with_line_and_key(
    tmp_path: Path, metrics: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load(config(tmp_path, metrics))
    assert str(info.value).startswith(f"{tmp_path / 'tw0.toml'}:{expected}"), str(info.value)
