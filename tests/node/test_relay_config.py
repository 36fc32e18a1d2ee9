"""[relay] and relay:// endpoints: the settings in bytes, each mistake one sentence with
the file, line and key; a relay:// endpoint names the relay's key in base64url."""

import base64
from pathlib import Path

import pytest

from tidewire.node.config import ConfigError, load
from tidewire.node.control import RequestError
from tidewire.node.core.relay import RelayConfig, encode
from tidewire.node.requests import peer_spec_from_request, relayed
from tidewire.protocol.types import RELAY
from tidewire.protocol.types import Path as LinkPath

KEY = base64.b64encode(bytes(range(32))).decode()
RELAY_KEY = bytes(range(1, 33))
PEER_KEY = bytes(range(2, 34))
BASE = f'[interface]\nname = "tw9"\nprivate_key = "{KEY}"\n\n'


def write(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "node.toml"
    p.write_text(BASE + body)
    return p


def test_the_defaults_and_the_settings(tmp_path: Path) -> None:
    assert load(write(tmp_path, "")).relay == RelayConfig()
    cfg = load(
        write(
            tmp_path,
            '[relay]\nenabled = true\npair_rate = "8 Mbit/s"\npair_cap = "1 GiB"\nmax_pairs = 9\n',
        )
    ).relay
    assert (cfg.enabled, cfg.pair_rate, cfg.pair_cap, cfg.max_pairs) == (True, 1_000_000, 2**30, 9)
    off = load(write(tmp_path, '[relay]\npair_rate = "unlimited"\npair_cap = "unlimited"\n')).relay
    assert off.pair_rate is None and off.pair_cap is None and not off.enabled
    assert not off.require_receipts and off.price == 0  # free relaying by default
    paid = load(write(tmp_path, "[relay]\nrequire_receipts = true\nprice = 250000\n")).relay
    assert paid.require_receipts and paid.price == 250_000


@pytest.mark.parametrize(
    ("body", "line", "field", "says"),
    [
        ("[relay]\nenabled = 1\n", 6, "[relay] enabled", "true or false"),
        ('[relay]\npair_rate = "fast"\n', 6, "[relay] pair_rate", "is not a rate"),
        ("[relay]\npair_rate = 5\n", 6, "[relay] pair_rate", "in quotes"),
        ('[relay]\npair_cap = "0 B"\n', 6, "[relay] pair_cap", "at least one byte"),
        ('[relay]\npair_cap = "lots"\n', 6, "[relay] pair_cap", "is not a size"),
        ("[relay]\nmax_pairs = 0\n", 6, "[relay] max_pairs", "integer from 1"),
        ("[relay]\nrelay = true\n", 6, "[relay] relay", "unknown key"),
        ('[relay]\nrequire_receipts = "yes"\n', 6, "[relay] require_receipts", "true or false"),
        ("[relay]\nenabled = true\nprice = -1\n", 7, "[relay] price", "integer from 0"),
        ('[relay]\nprice = "cheap"\n', 6, "[relay] price", "integer"),
    ],
)
def test_mistakes_name_the_line_and_key(
    tmp_path: Path, body: str, line: int, field: str, says: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, body))
    assert info.value.line == line and info.value.key == field and says in str(info.value)


def test_a_relay_endpoint_next_to_a_direct_one(tmp_path: Path) -> None:
    peer = base64.b64encode(PEER_KEY).decode()
    body = (
        f'[[peer]]\npublic_key = "{peer}"\n'
        f'endpoints = ["192.0.2.1:51820", "relay://{encode(RELAY_KEY)}"]\n'
    )
    spec = load(write(tmp_path, body)).peers[0]
    assert spec.endpoint == "192.0.2.1:51820"
    assert spec.fallbacks == [f"relay://{encode(RELAY_KEY)}"]
    # standard base64 is accepted and written as base64url
    std = base64.b64encode(RELAY_KEY).decode()
    body = f'[[peer]]\npublic_key = "{peer}"\nendpoints = ["relay://{std}"]\n'
    assert load(write(tmp_path, body)).peers[0].endpoint == f"relay://{encode(RELAY_KEY)}"


def test_bad_relay_endpoints_are_one_sentence(tmp_path: Path) -> None:
    peer = base64.b64encode(PEER_KEY).decode()
    for value, says in (
        ("relay://nokey", "relay:// takes the relay's public key"),
        (f"relay://{encode(RELAY_KEY)}:1", "relay:// takes the relay's public key"),
    ):
        body = f'[[peer]]\npublic_key = "{peer}"\nendpoints = ["{value}"]\n'
        with pytest.raises(ConfigError) as info:
            load(write(tmp_path, body))
        assert info.value.line == 7 and says in str(info.value)
    body = f'[[peer]]\npublic_key = "{peer}"\nmode = "wireguard"\nendpoints = ["relay://{encode(RELAY_KEY)}"]\n'
    with pytest.raises(ConfigError, match="can only use udp://"):
        load(write(tmp_path, body))
    listener = tmp_path / "listen.toml"
    listener.write_text(BASE.replace("\n\n", f'\nlisten = ["relay://{encode(RELAY_KEY)}"]\n'))
    with pytest.raises(ConfigError, match="not a listener"):
        load(listener)


def test_peer_add_takes_a_relay_endpoint() -> None:
    req = {
        "public_key": base64.b64encode(PEER_KEY).decode(),
        "endpoint": f"relay://{encode(RELAY_KEY)}",
    }
    spec = peer_spec_from_request(req)
    assert spec.endpoint == f"relay://{encode(RELAY_KEY)}"
    with pytest.raises(RequestError, match="relay:// takes"):
        peer_spec_from_request({**req, "endpoint": "relay://x"})
    path = relayed(LinkPath(RELAY, (encode(RELAY_KEY), 0)), PEER_KEY)
    assert path.address == (f"{encode(RELAY_KEY)}.{encode(PEER_KEY)}", 0)
    assert str(path) == f"relay://{encode(RELAY_KEY)}.{encode(PEER_KEY)}"
