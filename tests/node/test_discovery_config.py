"""`[discovery]`: dht, dht_port, dht_bootstrap, region and bootstrap; a bad
value is one sentence naming the file, the line and the key."""

import base64
from pathlib import Path

import pytest

from tidewire.node.config import ConfigError, DiscoverySpec, load

KEY = base64.b64encode(bytes(range(32))).decode()


def config(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "tw0.toml"
    p.write_text(f'[interface]\nprivate_key = "{KEY}"\n\n[discovery]\n{body}\n')
    return p


def test_no_discovery_table_means_no_dht(tmp_path: Path) -> None:
    p = tmp_path / "tw0.toml"
    p.write_text(f'[interface]\nprivate_key = "{KEY}"\n')
    assert load(p).discovery == DiscoverySpec()


def test_the_keys_are_read(tmp_path: Path) -> None:
    cfg = load(
        config(
            tmp_path,
            'dht = true\ndht_port = 6881\nregion = "eu-west"\n'
            'dht_bootstrap = ["router.example.net:6881", "203.0.113.9:6881", "[2001:db8::1]:6881"]',
        )
    )
    assert cfg.discovery == DiscoverySpec(
        dht=True,
        dht_port=6881,
        dht_bootstrap=[("router.example.net", 6881), ("203.0.113.9", 6881), ("2001:db8::1", 6881)],
        region="eu-west",
    )


def test_gossip_bootstrap_nodes_are_key_at_endpoint(tmp_path: Path) -> None:
    other = base64.b64encode(bytes([9]) * 32).decode()
    cfg = load(
        config(
            tmp_path,
            f'bootstrap = ["{other}@masked://203.0.113.5:8443", "{other}@[2001:db8::1]:51820"]',
        )
    )
    assert cfg.discovery.bootstrap == [
        (bytes([9]) * 32, "masked://203.0.113.5:8443"),
        (bytes([9]) * 32, "[2001:db8::1]:51820"),
    ]
    assert not cfg.discovery.dht


@pytest.mark.parametrize(
    ("body", "line", "key", "says"),
    [
        ('dht = "yes"\ndht_bootstrap = ["a:1"]', 5, "dht", "true or false"),
        ("dht_port = 70000", 5, "dht_port", "65535"),
        ('dht_bootstrap = ["no-port"]', 5, "dht_bootstrap", "is not host:port"),
        ('dht_bootstrap = "a:1"', 5, "dht_bootstrap", "list"),
        ('region = "EU West"', 5, "region", "lower-case"),
        ("dht = true", 5, "dht_bootstrap", "is required"),
        ("bootstrap_nodes = []", 5, "bootstrap_nodes", "unknown key"),
        ('bootstrap = ["203.0.113.5:51820"]', 5, "bootstrap", "KEY@ENDPOINT"),
        (f'bootstrap = ["{KEY}@ftp://203.0.113.5:1"]', 5, "bootstrap", "unknown scheme"),
        ('bootstrap = ["bad@203.0.113.5:1"]', 5, "bootstrap", "key"),
        (
            f"bootstrap = [{', '.join(f'{chr(34)}{KEY}@h:{i}{chr(34)}' for i in range(1, 18))}]",
            5,
            "bootstrap",
            "at most 16",
        ),
    ],
)
def test_bad_values_name_the_file_line_and_key(
    tmp_path: Path, body: str, line: int, key: str, says: str
) -> None:
    path = config(tmp_path, body)
    with pytest.raises(ConfigError) as e:
        load(path)
    text = str(e.value)
    assert text.startswith(f"{path}:") and f"[discovery] {key}" in text and says in text
    if key != "dht_bootstrap" or "required" not in says:
        assert f"{path}:{line}:" in text, text
