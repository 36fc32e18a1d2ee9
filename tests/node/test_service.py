"""`tidewire service install` (cli/cmd_service.py) and the files it ships: the systemd unit
passes `systemd-analyze verify` once installed, and the procd init script is valid shell
that, run against stand-ins for OpenWrt's procd functions, starts one respawned
`tidewire up NAME` per config and reloads with SIGHUP."""

import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tidewire.cli import cmd_service
from tidewire.cli.env import Environment
from tidewire.cli.main import main

COMMAND = "/opt/tidewire/bin/tidewire"


def install(*argv: str) -> tuple[int, str, str]:
    env = Environment(stdin=io.StringIO(), stdout=io.StringIO(), stderr=io.StringIO())
    code = main(["service", "install", *argv], env)
    return code, env.stdout.getvalue(), env.stderr.getvalue()  # type: ignore[attr-defined]


def unit_settings(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and line[0] != "#")


def test_the_unit_is_a_hardened_notify_service_running_this_command(tmp_path: Path) -> None:
    code, out, _ = install("--systemd", "--prefix", str(tmp_path), "--command", COMMAND)
    unit = tmp_path / "etc/systemd/system/tidewire@.service"
    assert code == 0 and f"wrote {unit}" in out and "systemctl enable --now tidewire@NAME" in out
    settings = unit_settings(unit.read_text())
    assert settings["ExecStart"] == f"{COMMAND} up %i"  # `up` stays in the foreground
    assert settings["Type"] == "notify" and settings["NotifyAccess"] == "main"
    assert settings["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert settings["Restart"] == "on-failure" and int(settings["WatchdogSec"]) > 0
    assert "CAP_NET_ADMIN" in settings["CapabilityBoundingSet"].split()
    assert settings["AmbientCapabilities"] == settings["CapabilityBoundingSet"]
    assert settings["ProtectSystem"] == "strict" and settings["NoNewPrivileges"] == "yes"
    writable = settings["ReadWritePaths"].split()
    assert "/var/lib/tidewire" in writable and "/run/tidewire" in writable
    assert settings["DeviceAllow"] == "/dev/net/tun rw"
    assert set(settings["RestrictAddressFamilies"].split()) >= {
        "AF_UNIX",
        "AF_NETLINK",
        "AF_INET",
        "AF_INET6",
    }
    assert oct(unit.stat().st_mode & 0o777) == "0o644"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_the_installed_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    tidewire = shutil.which("tidewire") or "/bin/true"  # verify wants an executable there
    assert install("--systemd", "--prefix", str(tmp_path), "--command", tidewire)[0] == 0
    unit = tmp_path / "etc/systemd/system/tidewire@.service"
    instance = tmp_path / "tidewire@tw0.service"  # verify checks an instance of the template
    instance.write_text(unit.read_text())
    out = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(instance)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0 and out.stderr == "", out.stderr


def test_the_procd_script_is_valid_shell(tmp_path: Path) -> None:
    assert install("--procd", "--prefix", str(tmp_path), "--command", COMMAND)[0] == 0
    script = tmp_path / "etc/init.d/tidewire"
    assert os.access(script, os.X_OK)
    subprocess.run(["sh", "-n", str(script)], check=True, timeout=30)
    text = script.read_text()
    assert text.startswith("#!/bin/sh /etc/rc.common\n") and "\nUSE_PROCD=1\n" in text


PROCD_STUBS = """
procd_open_instance() { echo "open $1"; }
procd_set_param() { echo "param $*"; }
procd_close_instance() { echo "close"; }
procd_send_signal() { echo "signal $*"; }
"""


def test_procd_starts_one_respawned_instance_per_config_and_reloads_with_hup(
    tmp_path: Path,
) -> None:
    assert install("--procd", "--prefix", str(tmp_path), "--command", COMMAND)[0] == 0
    confs = tmp_path / "conf"
    confs.mkdir()
    for name in ("tw0", "tw1"):
        (confs / f"{name}.toml").write_text("")
    (confs / "notes.txt").write_text("")
    script = tmp_path / "etc/init.d/tidewire"
    shell = f'{PROCD_STUBS}\n. "{script}"\nCONFDIR="{confs}"\nstart_service\nreload_service\n'
    out = subprocess.run(
        ["sh", "-c", shell], capture_output=True, text=True, timeout=30, check=True
    ).stdout.splitlines()
    for name in ("tw0", "tw1"):
        assert f"open {name}" in out
        assert f"param command {COMMAND} up {name}" in out
    assert out.count("param respawn 3600 5 5") == 2 and out.count("close") == 2
    assert "param stderr 1" in out
    assert out[-1] == "signal tidewire * HUP"


def test_json_says_what_was_written_and_what_to_run(tmp_path: Path) -> None:
    code, out, _ = install("--procd", "--prefix", str(tmp_path), "--command", COMMAND, "--json")
    assert code == 0
    assert json.loads(out) == {
        "manager": "procd",
        "file": str(tmp_path / "etc/init.d/tidewire"),
        "command": COMMAND,
        "next": ["/etc/init.d/tidewire enable", "/etc/init.d/tidewire start"],
    }


def test_installing_into_etc_needs_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    code, out, err = install("--systemd")
    assert code == 1 and out == ""
    assert err == "tidewire: writing to /etc needs root: run as root, or give --prefix DIR\n"


def test_a_command_under_home_is_noted(tmp_path: Path) -> None:
    code, _, err = install("--systemd", "--prefix", str(tmp_path), "--command", "/home/a/tw")
    assert code == 0 and "ProtectHome=yes hides" in err


def test_the_default_command_is_this_installation() -> None:
    command = cmd_service.this_command()
    assert command.endswith(("/tidewire", " -m tidewire.cli.main"))
