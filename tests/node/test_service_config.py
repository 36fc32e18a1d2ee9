"""wg-quick's Table, FwMark, hooks and SaveConfig, and the kill switch keys: read from
both formats with the same meaning; a bad value is one error naming file, line and key.
(wg-quick(8) is the reference for what each key means.)"""

import base64
from pathlib import Path

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


@pytest.mark.parametrize(
    ("name", "old", "new", "expected"),
    [
        (
            "wg0.conf",
            "Table = 1234",
            "Table = bogus",
            "wg0.conf:4: [Interface] Table: must be off,",
        ),
        ("wg0.conf", "Table = 1234", "Table = 0", "wg0.conf:4: [Interface] Table: must be off,"),
        ("wg0.conf", "Table = 1234", "Table = 4294967296", "wg0.conf:4: [Interface] Table:"),
        ("wg0.conf", "FwMark = 0xca6c", "FwMark = 0xzz", "wg0.conf:5: [Interface] FwMark: must be"),
        (
            "wg0.conf",
            "PostUp = echo two",
            "PostUp =   ",
            "wg0.conf:8: [Interface] PostUp: must be a",
        ),
        (
            "wg0.conf",
            "SaveConfig = true",
            "SaveConfig = yes",
            "wg0.conf:10: [Interface] SaveConfig:",
        ),
        ("wg0.conf", "KillSwitch = true", "KillSwitch = 1", "wg0.conf:11: [Interface] KillSwitch:"),
        (
            "tw1.toml",
            "table = 1234",
            'table = "nope"',
            "tw1.toml:4: [interface] table: must be off,",
        ),
        ("tw1.toml", "table = 1234", "table = true", "tw1.toml:4: [interface] table: must be off,"),
        ("tw1.toml", "fwmark = 0xca6c", "fwmark = -1", "tw1.toml:5: [interface] fwmark: must be"),
        (
            "tw1.toml",
            'post_down = "echo gone"',
            "post_down = 3",
            "tw1.toml:8: [interface] post_down:",
        ),
        (
            "tw1.toml",
            "kill_switch = true",
            'kill_switch = "on"',
            "tw1.toml:9: [interface] kill_switch:",
        ),
    ],
)
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
