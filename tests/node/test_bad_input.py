"""Bad config, arguments and files at the CLI: one sentence naming the file, the line
and the field, a non-zero exit, never a traceback (defects of issue "bad input")."""

import base64
import io
import json
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest
import trio

from tidewire.cli.env import Environment
from tidewire.cli.main import main
from tidewire.node.config import ConfigError, load
from tidewire.node.errors import NodeError
from tidewire.node.state import TimestampStore
from tidewire.protocol.keys import derive_public

PRIVATE = bytes(range(32))
KEY = base64.b64encode(PRIVATE).decode()
KEY2 = base64.b64encode(bytes(range(1, 33))).decode()
OWN_PUBLIC = base64.b64encode(derive_public(PRIVATE)).decode()
# Low-order points of Curve25519, from the list in cr.yp.to/ecdh.html ("Which public
# keys are affected?"): 0, 1, and a point of order 8.
LOW_ORDER = [
    bytes(32),
    (1).to_bytes(32, "little"),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
]


def run(argv: list[str], stdin: str = "") -> tuple[int, str, str]:
    env = Environment(stdin=io.StringIO(stdin), stdout=io.StringIO(), stderr=io.StringIO())
    try:
        code = main(argv, env)
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, env.stdout.getvalue(), env.stderr.getvalue()  # type: ignore[attr-defined]


def toml(peer_key: str = KEY2, extra: str = "") -> str:
    return f"""[interface]
name = "tw9"
private_key = "{KEY}"

[[peer]]
public_key = "{peer_key}"
endpoint = "example.net:51820"
{extra}"""


def wg(peer_key: str = KEY2, mtu: str = "1420") -> str:
    return f"""[Interface]
PrivateKey = {KEY}
MTU = {mtu}

[Peer]
PublicKey = {peer_key}
Endpoint = 192.0.2.1:51820
"""


def config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as err:
        load(path)
    return str(err.value)


# -- 4. one interface-name check for both readers ----------------------------------


@pytest.mark.parametrize("name", ['a"b c', "a-name-of-16-chr", ".", ".."])
def test_wg_quick_file_name_must_be_an_interface_name(tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.conf"
    if name in (".", ".."):  # not creatable as such: a file named "..conf" is "." + ".conf"
        path = tmp_path / "x.conf"
        path.write_text(wg())
        from tidewire.node.config import ifname_problem

        assert ifname_problem(name) is not None
        return
    path.write_text(wg())
    message = config_error(path)
    assert message.startswith(f"{path}: interface name: must be 1-15 characters")


def test_toml_name_and_outbound_interface_use_the_same_check(tmp_path: Path) -> None:
    path = tmp_path / "n.toml"
    path.write_text(toml().replace('name = "tw9"', 'name = ".."'))
    assert config_error(path).startswith(f"{path}:2: [interface] name: must be 1-15")
    path.write_text(toml(extra='[exit]\noutbound_interface = "e th0"\n'))
    assert config_error(path).startswith(f"{path}:9: [exit] outbound_interface: must be 1-15")


# -- 5. the node's own key and low-order keys ---------------------------------------


def test_a_peer_with_the_nodes_own_key_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "n.toml"
    path.write_text(toml(OWN_PUBLIC))
    assert config_error(path).startswith(
        f"{path}:6: [[peer]] #1 public_key: is this node's own public key"
    )
    conf = tmp_path / "wg0.conf"
    conf.write_text(wg(OWN_PUBLIC))
    assert config_error(conf).startswith(f"{conf}:6: [Peer] PublicKey: is this node's own")


@pytest.mark.parametrize("point", LOW_ORDER)
def test_a_low_order_peer_key_is_a_config_error(tmp_path: Path, point: bytes) -> None:
    key = base64.b64encode(point).decode()
    path = tmp_path / "n.toml"
    path.write_text(toml(key))
    assert config_error(path).startswith(f"{path}:6: [[peer]] #1 public_key: is a low-order")
    conf = tmp_path / "wg0.conf"
    conf.write_text(wg(key))
    assert config_error(conf).startswith(f"{conf}:6: [Peer] PublicKey: is a low-order")


class _FailingDaemon:
    """Stands in for the Daemon: its nursery task fails as a real one can."""

    error: BaseException = NodeError("x")

    def __init__(self, cfg: Any, **kwargs: Any) -> None:
        pass

    async def run(self) -> None:
        async def fail() -> None:
            raise self.error

        async with trio.open_nursery() as nursery:
            nursery.start_soon(fail)
            nursery.start_soon(trio.sleep_forever)


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (NodeError("the TUN device is gone"), "tidewire: the TUN device is gone\n"),
        (
            OSError(100, "Network is down"),
            "tidewire: the node stopped: Network is down\n",
        ),
    ],
)
def test_up_turns_an_error_inside_a_nursery_into_one_sentence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException, says: str
) -> None:
    import tidewire.node.daemon

    path = tmp_path / "n.toml"
    path.write_text(toml().replace('endpoint = "example.net:51820"', ""))
    monkeypatch.setattr(_FailingDaemon, "error", error)
    monkeypatch.setattr(tidewire.node.daemon, "Daemon", _FailingDaemon)
    code, _, err = run(["up", str(path)])
    assert code == 1
    assert err.endswith(says) and "Traceback" not in err and "ExceptionGroup" not in err


# -- 6. checks against this machine at `up` ------------------------------------------


class _NeverStarted:
    """A Daemon that must not be reached: the check before it should have stopped `up`."""

    def __init__(self, cfg: Any, **kwargs: Any) -> None:
        raise AssertionError("the daemon was started")


@pytest.fixture
def no_daemon(monkeypatch: pytest.MonkeyPatch) -> None:
    import tidewire.node.daemon

    monkeypatch.setattr(tidewire.node.daemon, "Daemon", _NeverStarted)


@pytest.mark.usefixtures("no_daemon")
def test_up_refuses_an_outbound_interface_that_does_not_exist(tmp_path: Path) -> None:
    path = tmp_path / "n.toml"
    text = toml(extra='[exit]\nenabled = true\noutbound_interface = "nosuchif9"\n')
    path.write_text(text.replace('endpoint = "example.net:51820"', ""))
    code, _, err = run(["up", str(path)])
    assert code == 1
    assert err == (
        f"tidewire: {path}:10: [exit] outbound_interface: there is no network interface"
        " 'nosuchif9'\n"
    )


@pytest.mark.usefixtures("no_daemon")
def test_up_names_file_and_line_of_an_endpoint_that_does_not_resolve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_dns(host: str, port: int) -> tuple[str, int]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    from tidewire.node.config import system

    monkeypatch.setattr(system, "resolve", no_dns)
    path = tmp_path / "n.toml"
    path.write_text(toml().replace("example.net", "no-such-host.invalid"))
    code, _, err = run(["up", str(path)])
    assert code == 1
    assert err == (
        f"tidewire: {path}:7: [[peer]] #1 endpoint: cannot resolve no-such-host.invalid"
        " (Name or service not known)\n"
    )


def test_a_resolved_endpoint_replaces_the_name(tmp_path: Path) -> None:
    from tidewire.node.config.system import check_system

    path = tmp_path / "wg0.conf"
    path.write_text(wg().replace("192.0.2.1", "[2001:db8::1]"))
    cfg = load(path)
    check_system(
        cfg, exit_enabled=False, interface_exists=lambda n: False, resolve=lambda h, p: (h, p)
    )
    assert cfg.peers[0].endpoint == "[2001:db8::1]:51820"


# -- 8. values that used to raise inside the loaders ----------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (toml().replace('name = "tw9"', 'name = "tw9"\nlisten_port = "²"'), "listen_port: must be"),
        (toml().replace("example.net", "a" * 64 + ".net"), "endpoint: 'aaaa"),
        (toml().replace('name = "tw9"', 'name = "tw9"\nstate_dir = "/a\\u0000b"'), "NUL"),
        (
            toml().replace('name = "tw9"', 'name = "tw9"\ncontrol_socket = "/' + "s" * 120 + '"'),
            "control_socket: is 121 bytes long",
        ),
        (
            toml().replace('name = "tw9"', 'name = "tw9"\ncontrol_socket = "/"'),
            "control_socket: '/' names a directory",
        ),
        ("peer = [1]\n" + toml().split("[[peer]]")[0], "peer: use [[peer]] tables"),
    ],
)
def test_fuzz_findings_in_toml_are_config_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "n.toml"
    path.write_text(text)
    assert expected in config_error(path)


def test_unicode_digits_in_wg_quick_are_config_errors(tmp_path: Path) -> None:
    path = tmp_path / "wg0.conf"
    path.write_text(wg(mtu="¹²⁸⁰"))
    assert config_error(path).startswith(f"{path}:3: [Interface] MTU: must be an integer")


def test_a_nul_in_a_key_file_path_and_a_non_utf8_key_file(tmp_path: Path) -> None:
    path = tmp_path / "n.toml"
    path.write_text(toml().replace(f'private_key = "{KEY}"', 'private_key_file = "k\\u0000"'))
    assert "private_key_file: a path cannot hold a NUL character" in config_error(path)
    (tmp_path / "k").write_bytes(b"\xff\xfe" * 22)
    path.write_text(toml().replace(f'private_key = "{KEY}"', 'private_key_file = "k"'))
    assert "private_key_file: " in config_error(path) and "not even text" in config_error(path)


def test_a_non_utf8_config_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "n.toml"
    path.write_bytes(toml().encode().replace(b"tw9", b"tw\xff"))
    assert config_error(path) == f"{path}:2: file: is not UTF-8 text (byte 22)"


@pytest.mark.parametrize(
    "content",
    [
        {"a" * 43 + "=": "zz"},
        {KEY: 5},
        {KEY: None},
        {KEY: "00"},
        {"not a key": "00" * 12},
        [1, 2],
    ],
)
def test_a_corrupt_timestamps_file_is_moved_aside(tmp_path: Path, content: Any) -> None:
    (tmp_path / "timestamps.json").write_text(json.dumps(content))
    store = TimestampStore(tmp_path)
    assert store.get(PRIVATE) is None and store.stamps == {}
    assert (tmp_path / "timestamps.corrupt").exists()


# -- 9. genkey -o ---------------------------------------------------------------


def test_genkey_refuses_to_write_through_a_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    os.chmod(victim, 0o644)
    link = tmp_path / "key"
    link.symlink_to(victim)
    code, _, err = run(["genkey", "-o", str(link)])
    assert code == 1
    assert err == f"tidewire: {link} is a symbolic link; refusing to write a key through it\n"
    assert victim.read_text() == "precious\n"


def test_genkey_over_an_existing_file_makes_it_private(tmp_path: Path) -> None:
    target = tmp_path / "key"
    target.write_text("old contents that are longer than a key, to see the truncation\n")
    os.chmod(target, 0o644)
    assert run(["genkey", "-o", str(target)])[0] == 0
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert len(target.read_text()) == 45


# -- 7. report --epoch current ---------------------------------------------------


def test_report_current_is_resolved_by_the_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI passes "current" on and prints the epoch the node chose: only the node
    knows its epoch length and its clock."""
    from tidewire.cli import cmd_report

    asked: list[dict[str, Any]] = []

    def fake_call(args: Any, env: Any, message: dict[str, Any]) -> dict[str, Any]:
        asked.append(message)
        totals = {"verified_up": 0, "verified_down": 0}
        return {"ok": True, "report": {"epoch": 2000, "sessions": [], "totals": totals}}

    monkeypatch.setattr(cmd_report, "run_call", fake_call)
    code, out, _ = run(["report", "--epoch", "current", "-o", str(tmp_path / "r.json")])
    assert code == 0
    assert asked == [{"cmd": "report", "epoch": "current"}]
    assert out.startswith("epoch 2000:")


def test_epoch_at_is_the_window_holding_the_moment() -> None:
    from tidewire.protocol.accounting.report import epoch_at

    assert epoch_at(7200.0 * 1000 + 5, 3600) == 2000  # 7,200,005 s // 3600 s
    assert epoch_at(3599.999, 3600) == 0 and epoch_at(3600.0, 3600) == 1


def test_report_epoch_with_unicode_digits_is_a_usage_error(tmp_path: Path) -> None:
    code, _, err = run(["report", "--epoch", "²", "-o", str(tmp_path / "r.json")])
    assert code == 2 and "is not a non-negative integer" in err


def test_resolve_of_a_bad_host_name_is_a_node_error() -> None:
    from tidewire.node.requests import resolve

    with pytest.raises(NodeError, match="is not a host name"):
        trio.run(resolve, "a" * 64 + ".net:51820")
