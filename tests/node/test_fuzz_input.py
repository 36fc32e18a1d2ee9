"""Fuzzing the config readers and `verify`/`rewards`: random and mutated files give a
ConfigError or FAIL lines, never any other exception (and never a traceback)."""

import base64
import contextlib
import functools
import io
import json
from collections.abc import Iterator
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.test_receipts import PROVIDER, make_report
from tidewire.cli import main as cli_main
from tidewire.cli.env import Environment
from tidewire.cli.main import main
from tidewire.node.config import ConfigError, load

KEY = base64.b64encode(bytes(range(32))).decode()
KEY2 = base64.b64encode(bytes(range(1, 33))).decode()

TOML = f"""[interface]
name = "tw9"
private_key = "{KEY}"
address = ["10.0.0.1/24"]
listen_port = 51820
mtu = 1420
state_dir = "/tmp/tw-state"
control_socket = "/tmp/tw9.sock"
table = 1234
fwmark = 0x10
post_up = ["echo %i", "true"]
kill_switch = true

[[peer]]
public_key = "{KEY2}"
allowed_ips = ["10.0.0.2/32"]
endpoint = "example.net:51820"
persistent_keepalive = 25

[exit]
enabled = true
outbound_interface = "eth0"
allow = ["192.168.1.10/32 tcp:80"]

[accounting]
epoch_seconds = 3600
tolerance = 0.05
"""

WG = f"""[Interface]
PrivateKey = {KEY}
ListenPort = 51820
Address = 10.0.0.1/24, fd00::1/64
MTU = 1420
Table = off
FwMark = 0x10
PostUp = echo %i
SaveConfig = true
KillSwitch = true

[Peer]
PublicKey = {KEY2}
AllowedIPs = 10.0.0.2/32
Endpoint = [2001:db8::5]:51820
PersistentKeepalive = 25
"""

# pieces that found bugs, and others like them
NASTY = [
    "²",
    "¹²⁸⁰",
    "١٢",
    "\x00",
    "a" * 64 + ".net",
    "/",
    "/" + "s" * 120,
    "[1]",
    "1e999",
    "-1",
    "9" * 30,
    '"',
    "\\u0000",
    "[[peer]]",
    "\n[Peer]\n",
    "=",
    "#",
    "\udcff",
    "\u2028",
    "{}",
    "inf",
    "nan",
    "true",
    "..",
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
]


def mutate(base: str, data: st.DataObject) -> str:
    text = base
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(text)))
        j = data.draw(st.integers(i, min(len(text), i + 12)))
        piece = data.draw(st.sampled_from(NASTY) | st.text(max_size=8))
        text = text[:i] + piece + text[j:]
    return text


def load_or_config_error(directory: Path, name: str, content: bytes) -> None:
    path = directory / name
    path.write_bytes(content)
    try:
        load(path)
    except ConfigError as exc:
        assert str(exc).startswith(f"{path}")
        raise


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


KNOWN = [  # the mutations that gave tracebacks before
    ("n.toml", TOML.replace("listen_port = 51820", 'listen_port = "²"').encode()),
    ("wg0.conf", WG.replace("MTU = 1420", "MTU = ¹²⁸⁰").encode()),
    ("n.toml", TOML.replace("example.net", "a" * 64 + ".net").encode()),
    ("wg0.conf", WG.replace("[2001:db8::5]", "a" * 64 + ".net").encode()),
    ("n.toml", TOML.replace('"/tmp/tw-state"', '"/tmp/\\u0000"').encode()),
    ("n.toml", TOML.replace('"/tmp/tw9.sock"', '"/' + "s" * 120 + '"').encode()),
    ("n.toml", TOML.replace('"/tmp/tw9.sock"', '"/"').encode()),
    ("n.toml", TOML.encode().replace(b"tw9", b"tw\xff")),
    ("wg0.conf", WG.encode().replace(b"51820", b"\xc3(")),
    ("n.toml", b"peer = [1]\n" + TOML.split("[[peer]]")[0].encode()),
]


@pytest.mark.parametrize(("name", "content"), KNOWN)
def test_known_bad_configs_raise_config_error(tmp_path: Path, name: str, content: bytes) -> None:
    with pytest.raises(ConfigError):
        load_or_config_error(tmp_path, name, content)


@FUZZ
@given(st.data(), st.sampled_from([("n.toml", TOML), ("wg0.conf", WG)]))
def test_mutated_configs_load_or_raise_config_error(
    data: st.DataObject, base: tuple[str, str]
) -> None:
    name, text = base
    with TemporaryDirectory() as tmp:
        content = mutate(text, data).encode("utf-8", "surrogateescape")
        with contextlib.suppress(ConfigError):
            load_or_config_error(Path(tmp), name, content)


@FUZZ
@given(st.binary(max_size=300), st.sampled_from(["n.toml", "wg0.conf"]))
def test_random_bytes_load_or_raise_config_error(content: bytes, name: str) -> None:
    with TemporaryDirectory() as tmp, contextlib.suppress(ConfigError):
        load_or_config_error(Path(tmp), name, content)


@pytest.fixture(scope="module", autouse=True)
def one_parser() -> Iterator[None]:
    """The CLI's parser built once for this module's hundreds of runs (building it took
    14 ms a run, most of the report fuzzing's time); each run parses its own argv."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cli_main, "build_parser", functools.cache(cli_main.build_parser))
        yield


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    env = Environment(stdin=io.StringIO(), stdout=io.StringIO(), stderr=io.StringIO())
    code = main(argv, env)
    return code, env.stdout.getvalue(), env.stderr.getvalue()  # type: ignore[attr-defined]


REPORT = json.dumps(make_report(), sort_keys=True)
JSON_NASTY = [
    "1e999",
    "Infinity",
    "-Infinity",
    "NaN",
    "9" * 400,
    "[]",
    "{}",
    "null",
    '"x"',
    "[" * 50,
]


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.floats()  # inf and nan included: Python's json writes and reads them
    | st.integers(-(1 << 70), 1 << 70)
    | st.sampled_from([10**6, 10**400, 2**64, -1, 0])
    | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


def mutate_report(data: st.DataObject) -> str:
    """A report with values replaced anywhere, signed again half the time (a lying
    provider signs what it likes), or with text spliced into its JSON."""
    doc: Any = make_report(epoch=data.draw(st.sampled_from([20000, 10**6])))
    if data.draw(st.booleans()):
        text = json.dumps(doc)
        i = data.draw(st.integers(0, len(text)))
        piece = data.draw(st.sampled_from(JSON_NASTY) | st.text(max_size=6))
        return text[:i] + piece + text[i + data.draw(st.integers(0, 8)) :]
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(doc)[1:]))
        holder = doc
        for step in path[:-1]:
            holder = holder[step]
        holder[path[-1]] = data.draw(JSON_VALUES)
    if data.draw(st.booleans()) and isinstance(doc, dict):
        body = {k: v for k, v in doc.items() if k != "signature"}
        raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        doc["signature"] = PROVIDER.sign(raw).signature.hex()
    return json.dumps(doc)


@FUZZ
@given(st.data(), st.sampled_from(["verify", "rewards"]))
def test_mutated_reports_are_fail_lines(data: st.DataObject, command: str) -> None:
    text = mutate_report(data)
    with TemporaryDirectory() as tmp:
        path = Path(tmp) / "r.json"
        path.write_text(text, errors="surrogateescape")
        code, out, err = run_cli([command, str(path)])
    if code == 0:
        return  # the mutation left a valid report (a field verify does not read, or resigned)
    assert code == 1
    if command == "verify":
        lines = out.splitlines()
        assert lines and all(line.startswith(f"FAIL {path}: ") for line in lines), out
    else:
        assert err.startswith("tidewire: not counted: ") and "Traceback" not in err
