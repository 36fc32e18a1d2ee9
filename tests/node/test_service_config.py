"""wg-quick's Table, FwMark, hooks and SaveConfig, and the kill switch keys: read from
both formats with the same meaning; a bad value is one error naming file, line and key.
(wg-quick(8) is the reference for what each key means.)"""

import base64
from pathlib import Path
from typing import ClassVar

import pytest

from tidewire.node.config import ConfigError, load
from tidewire.node.config.system import check_hooks

KEY = base64.b64encode(bytes(range(32))).decode()
KEY2 = base64.b64encode(bytes(range(1, 33))).decode()

WG = f"""[Interface]
PrivateKey = {KEY}
Address = 10.0.0.2/32
Table = 1234
FwMark = 0xca6c
PreUp = echo pre %i
PostUp = echo one %i  # a comment ends a hook, as in wg-quick
PostUp = echo two
PostDown = echo gone
SaveConfig = true
KillSwitch = true
KillSwitchAllowLAN = false

[Peer]
PublicKey = {KEY2}
AllowedIPs = 0.0.0.0/0
"""

TOML = f"""[interface]
name = "tw1"
private_key = "{KEY}"
table = 1234
fwmark = 0xca6c
pre_up = "echo pre %i"
post_up = ["echo one %i", "echo two"]
post_down = "echo gone"
kill_switch = true
kill_switch_allow_lan = false
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_wg_quick_service_keys(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, "wg0.conf", WG))
    s = cfg.service
    assert (s.table, s.fwmark, s.save_config, s.kill_switch) == (1234, 0xCA6C, True, True)
    assert [(h.command, h.line) for h in s.hooks["post_up"]] == [
        ("echo one %i", 7),
        ("echo two", 8),
    ]
    assert [h.command for h in s.hooks["pre_up"]] == ["echo pre %i"]
    assert s.hooks["pre_down"] == [] and [h.command for h in s.hooks["post_down"]] == ["echo gone"]
    assert s.hooks["post_up"][0].key == "[Interface] PostUp"
    assert cfg.warnings == []


def test_toml_service_keys_mean_the_same(tmp_path: Path) -> None:
    wg = load(write(tmp_path, "wg0.conf", WG)).service
    toml = load(write(tmp_path, "tw1.toml", TOML)).service
    assert (toml.table, toml.fwmark, toml.kill_switch) == (wg.table, wg.fwmark, wg.kill_switch)
    for name in ("pre_up", "post_up", "pre_down", "post_down"):
        assert [h.command for h in toml.hooks[name]] == [h.command for h in wg.hooks[name]]
    assert (
        toml.hooks["post_up"][0].line == 7 and toml.hooks["post_up"][0].key == "[interface] post_up"
    )
    assert toml.save_config is False  # SaveConfig is wg-quick's: TOML has no such key


@pytest.mark.parametrize(
    ("value", "expected"),
    [("off", "off"), ("Auto", "auto"), ("main", 254), ("51820", 51820), ("4294967295", 4294967295)],
)
def test_table_values(tmp_path: Path, value: str, expected: object) -> None:
    cfg = load(write(tmp_path, "wg0.conf", WG.replace("Table = 1234", f"Table = {value}")))
    assert cfg.service.table == expected


@pytest.mark.parametrize(
    ("value", "expected"), [("off", None), ("0", None), ("0x10", 16), ("77", 77)]
)
def test_fwmark_values(tmp_path: Path, value: str, expected: object) -> None:
    cfg = load(write(tmp_path, "wg0.conf", WG.replace("FwMark = 0xca6c", f"FwMark = {value}")))
    assert cfg.service.fwmark == expected


def test_defaults_are_todays_behaviour(tmp_path: Path) -> None:
    text = "\n".join(line for line in TOML.splitlines()[:3]) + "\n"
    s = load(write(tmp_path, "tw1.toml", text)).service
    assert (s.table, s.fwmark, s.kill_switch, s.any_hooks()) == ("auto", None, False, False)


# (file, text replaced, by, the start of the error after the folder)
BAD = [
    ("wg0.conf", "Table = 1234", "Table = bogus", "wg0.conf:4: [Interface] Table: must be off,"),
    ("wg0.conf", "Table = 1234", "Table = 0", "wg0.conf:4: [Interface] Table: must be off,"),
    ("wg0.conf", "Table = 1234", "Table = 4294967296", "wg0.conf:4: [Interface] Table:"),
    ("wg0.conf", "FwMark = 0xca6c", "FwMark = 0xzz", "wg0.conf:5: [Interface] FwMark: must"),
    ("wg0.conf", "PostUp = echo two", "PostUp =   ", "wg0.conf:8: [Interface] PostUp: must"),
    ("wg0.conf", "SaveConfig = true", "SaveConfig = yes", "wg0.conf:10: [Interface] SaveConfig:"),
    ("wg0.conf", "KillSwitch = true", "KillSwitch = 1", "wg0.conf:11: [Interface] KillSwitch:"),
    ("tw1.toml", "table = 1234", 'table = "nope"', "tw1.toml:4: [interface] table: must be off,"),
    ("tw1.toml", "table = 1234", "table = true", "tw1.toml:4: [interface] table: must be off,"),
    ("tw1.toml", "fwmark = 0xca6c", "fwmark = -1", "tw1.toml:5: [interface] fwmark: must be"),
    ("tw1.toml", 'post_down = "echo gone"', "post_down = 3", "tw1.toml:8: [interface] post_down:"),
    ("tw1.toml", "kill_switch = true", 'kill_switch = "on"', "tw1.toml:9: [interface] kill_switch"),
]


@pytest.mark.parametrize(("name", "old", "new", "expected"), BAD)
def test_bad_values_name_file_line_and_key(
    tmp_path: Path, name: str, old: str, new: str, expected: str
) -> None:
    base = WG if name.endswith(".conf") else TOML
    assert old in base
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, name, base.replace(old, new)))
    assert str(err.value).startswith(f"{tmp_path}/{expected}"), str(err.value)


def test_a_hook_in_a_peer_section_is_an_unknown_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"wg0.conf:17: \[Peer\] PostUp: unknown key"):
        load(write(tmp_path, "wg0.conf", WG + "PostUp = true\n"))


def test_a_missing_hook_command_names_file_and_line(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, "wg0.conf", WG.replace("echo two", "no-such-tool --flag")))
    known = {"echo"}
    with pytest.raises(ConfigError) as err:
        check_hooks(cfg, lambda word: word in known)
    assert str(err.value) == (
        f"{tmp_path}/wg0.conf:8: [Interface] PostUp: command not found: 'no-such-tool'"
        " (in `no-such-tool --flag`)"
    )
    known.add("no-such-tool")
    check_hooks(cfg, lambda word: word in known)  # all there: no error


def test_shell_syntax_in_the_first_word_is_left_to_bash(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, "wg0.conf", WG.replace("echo two", "X=1 $TOOL | cat")))
    check_hooks(cfg, lambda word: word == "echo")


# -- at `tidewire up`: before anything of the interface exists -------------------------

NODE = f"""[interface]
name = "tw1"
private_key = "{KEY}"
control_socket = "{{tmp}}/tw1.sock"
state_dir = "{{tmp}}/state"
"""


def run_cli(argv: list[str]) -> tuple[int, str]:
    import io

    from tidewire.cli.env import Environment
    from tidewire.cli.main import main

    env = Environment(stdin=io.StringIO(), stdout=io.StringIO(), stderr=io.StringIO())
    code = main(argv, env)
    assert isinstance(env.stderr, io.StringIO)
    return code, env.stderr.getvalue()


class _Recorded:
    """Stands in for the Daemon: records how `up` built it."""

    seen: ClassVar[dict[str, object]] = {}

    def __init__(self, cfg: object, **kwargs: object) -> None:
        _Recorded.seen = kwargs

    async def run(self) -> None:
        return None


def test_up_names_the_line_of_a_missing_post_up_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tidewire.node.daemon

    monkeypatch.setattr(tidewire.node.daemon, "Daemon", _Recorded)
    path = write(tmp_path, "tw1.toml", NODE.format(tmp=tmp_path) + 'post_up = "tidewire-nope %i"\n')
    code, err = run_cli(["up", str(path)])
    assert (code, err) == (
        1,
        f"tidewire: {path}:6: [interface] post_up: command not found: 'tidewire-nope'"
        " (in `tidewire-nope %i`)\n",
    )
    assert _Recorded.seen == {}  # stopped before the daemon
    code, err = run_cli(["up", "--no-hooks", str(path)])
    assert code == 0 and _Recorded.seen["run_hooks"] is False


def test_a_failing_pre_up_stops_the_start_before_the_interface(tmp_path: Path) -> None:
    import trio

    from tidewire.node.daemon import Daemon
    from tidewire.node.errors import NodeError

    marker = tmp_path / "post-up-ran"
    text = NODE.format(tmp=tmp_path) + f'pre_up = "exit 4"\npost_up = "touch {marker}"\n'
    cfg = load(write(tmp_path, "tw1.toml", text))
    with pytest.raises(NodeError) as err:
        trio.run(Daemon(cfg).run)
    assert (
        str(err.value)
        == f"{tmp_path}/tw1.toml:6: [interface] pre_up: `exit 4` failed (exit status 4)"
    )
    assert not marker.exists()


def test_hooks_from_a_world_writable_file_refuse_the_start(tmp_path: Path) -> None:
    import trio

    from tidewire.node.daemon import Daemon
    from tidewire.node.errors import NodeError

    path = write(tmp_path, "tw1.toml", NODE.format(tmp=tmp_path) + 'pre_up = "true"\n')
    path.chmod(0o666)
    with pytest.raises(NodeError, match=r"refusing the hooks of .* writable by group or others"):
        trio.run(Daemon(load(path)).run)
