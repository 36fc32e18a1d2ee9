"""`[routing]` (exit, max_price, region, avoid, hops, routes) and `[exit] open`/`price`:
the keys are read, the defaults hold, and a bad value is one sentence naming the file,
the line and the key."""

import base64
from ipaddress import ip_network
from pathlib import Path

import pytest

from tidewire.node.config import ConfigError, load
from tidewire.protocol.link.crypto import public_key

KEY = base64.b64encode(bytes(range(32))).decode()
OWN = base64.b64encode(public_key(bytes(range(32)))).decode()
OTHER = base64.b64encode(bytes(range(1, 33))).decode()


def config(tmp_path: Path, body: str | None, table: str = "routing") -> Path:
    """A config file with `[table]` holding `body` (None: no such table)."""
    (p := tmp_path / "tw0.toml").write_text(
        f'[interface]\nprivate_key = "{KEY}"\n' + ("" if body is None else f"\n[{table}]\n{body}\n")
    )
    return p


def test_no_routing_table_means_no_exit_choice(tmp_path: Path) -> None:
    cfg = load(config(tmp_path, None))
    assert cfg.routing is None and not cfg.exit.open and cfg.exit.price == 0


def test_auto_with_the_defaults(tmp_path: Path) -> None:
    r = load(config(tmp_path, 'exit = "auto"')).routing
    assert r is not None and r.auto and r.exit is None and r.enabled
    assert r.hops == 1 and r.max_price is None and r.region is None and not r.avoid
    assert r.routes == [ip_network("0.0.0.0/0"), ip_network("::/0")]


def test_every_key_is_read(tmp_path: Path) -> None:
    body = (
        f'exit = "{OTHER}"\nmax_price = 2000000\nregion = "eu-west"\n'
        f'avoid = ["{OTHER}"]\nhops = 2\nroutes = ["10.1.0.0/16"]'
    )
    r = load(config(tmp_path, body)).routing
    assert r is not None and not r.auto and r.exit == base64.b64decode(OTHER)
    assert r.max_price == 2_000_000 and r.region == "eu-west" and r.hops == 2
    assert r.avoid == frozenset({base64.b64decode(OTHER)})
    assert r.routes == [ip_network("10.1.0.0/16")]


def test_exit_open_and_price(tmp_path: Path) -> None:
    cfg = load(config(tmp_path, "enabled = true\nopen = true\nprice = 500000", table="exit"))
    assert cfg.exit.open and cfg.exit.price == 500_000


AUTO = 'exit = "auto"\n'
BAD = [  # (table, body, line of the error, key, what the sentence says)
    ("routing", "max_price = 3", 4, "exit", "is required"),
    ("routing", 'exit = "nearest"', 5, "exit", "base64"),
    ("routing", f'exit = "{OWN}"', 5, "exit", "own public key"),
    ("routing", AUTO + "max_price = -1", 6, "max_price", "integer"),
    ("routing", AUTO + 'region = "EU West"', 6, "region", "tag"),
    ("routing", AUTO + 'avoid = "x"', 6, "avoid", "list"),
    ("routing", AUTO + 'avoid = ["x"]', 6, "avoid", "key"),
    ("routing", AUTO + "hops = 3", 6, "hops", "relay chains"),
    ("routing", AUTO + "hops = 0", 6, "hops", "integer"),
    ("routing", AUTO + "routes = []", 6, "routes", "non-empty"),
    ("routing", AUTO + 'routes = ["10.0.0.0/33"]', 6, "routes", "not an IP prefix"),
    ("routing", AUTO + "metric = 3", 6, "metric", "unknown key"),
    ("exit", "open = 1", 5, "open", "true or false"),
    ("exit", 'price = "cheap"', 5, "price", "integer"),
]


@pytest.mark.parametrize("case", BAD, ids=[f"{c[0]}.{c[3]}-{c[4]}" for c in BAD])
def test_bad_values_name_the_file_line_and_key(
    tmp_path: Path, case: tuple[str, str, int, str, str]
) -> None:
    table, body, line, key, says = case
    path = config(tmp_path, body, table=table)
    with pytest.raises(ConfigError) as e:
        load(path)
    where, what = f"{path}:{line}:", f"[{table}] {key}"
    assert where in str(e.value) and what in str(e.value) and says in str(e.value), e.value


def test_a_reload_reports_routing_and_open_changes_as_needing_a_restart(tmp_path: Path) -> None:
    from tidewire.node.core.reload import diff

    running = load(config(tmp_path, 'exit = "auto"'))
    new = load(config(tmp_path, 'exit = "auto"\nmax_price = 5'))
    assert diff(running, new, peers={}).restart == ["[routing]"]
    opened = load(config(tmp_path, "enabled = true\nopen = true", table="exit"))
    closed = load(config(tmp_path, "enabled = true", table="exit"))
    assert "[exit] open, price" in diff(closed, opened, peers={}).restart
