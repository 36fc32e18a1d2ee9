"""The client's DNS while the tunnel is up (node/dns.py), against a fake /etc: the record
of what to undo is written before any change, a clean stop puts everything back, and
the next start after a kill -9 restores the original before applying anew."""

import json
import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from tidewire.node import dns
from tidewire.node.errors import NodeError

ORIGINAL = b"# from DHCP\nnameserver 192.168.1.1\nsearch home.arpa\n"
SETTINGS = dns.DnsSettings(servers=["10.99.0.1", "fd99::1"], search=["corp.example"])


class Fake:
    def __init__(self, tmp: Path, tools: tuple[str, ...] = (), resolved: bool = False) -> None:
        self.etc, self.state = tmp / "etc", tmp / "state"
        self.etc.mkdir()
        self.state.mkdir()
        (tmp / "run").mkdir()
        if resolved:
            (tmp / "run" / "resolve").mkdir()
        self.calls: list[tuple[list[str], str | None]] = []
        self.fail: str | None = None
        self.system = dns.System(
            resolv_conf=self.etc / "resolv.conf",
            resolved_runtime=tmp / "run" / "resolve",
            which=lambda name: f"/usr/bin/{name}" if name in tools else None,
            run=self.run,
        )

    def run(self, argv: Sequence[str], stdin: str | None) -> None:
        # the record exists before the tool changes anything
        assert (self.state / dns.RECORD).exists() or argv[1] in ("revert", "-d")
        self.calls.append((list(argv), stdin))
        if self.fail and self.fail in argv:
            raise NodeError(f"{argv[0]} said no")

    def apply(self) -> Path:
        return dns.apply(SETTINGS, iface="tw0", state_dir=self.state, system=self.system)


def test_file_is_replaced_and_restored(tmp_path: Path) -> None:
    f = Fake(tmp_path)
    conf = f.system.resolv_conf
    conf.write_bytes(ORIGINAL)
    conf.chmod(0o640)
    record = f.apply()
    text = conf.read_text()
    assert "nameserver 10.99.0.1\nnameserver fd99::1\nsearch corp.example\n" in text
    assert "192.168.1.1" not in text
    assert json.loads(record.read_text())["mechanism"] == "file"
    dns.restore(record, system=f.system)
    assert conf.read_bytes() == ORIGINAL and conf.stat().st_mode & 0o777 == 0o640
    assert not record.exists() and f.calls == []


def test_written_in_place_so_a_bind_mount_survives(tmp_path: Path) -> None:
    f = Fake(tmp_path)
    conf = f.system.resolv_conf
    conf.write_bytes(ORIGINAL)
    inode = conf.stat().st_ino
    dns.restore(f.apply(), system=f.system)
    assert conf.stat().st_ino == inode  # never renamed over (EBUSY on a mount point)
    assert sorted(p.name for p in f.etc.iterdir()) == ["resolv.conf"]  # no temporary files


def test_a_symlink_is_put_back_and_its_target_left_alone(tmp_path: Path) -> None:
    f = Fake(tmp_path)
    target = tmp_path / "run" / "stub-resolv.conf"
    target.write_bytes(ORIGINAL)
    os.symlink(target, f.system.resolv_conf)
    record = f.apply()
    assert not f.system.resolv_conf.is_symlink() and target.read_bytes() == ORIGINAL
    dns.restore(record, system=f.system)
    assert os.readlink(f.system.resolv_conf) == str(target)


def test_after_kill_9_the_next_start_restores_the_original_first(tmp_path: Path) -> None:
    f = Fake(tmp_path)
    conf = f.system.resolv_conf
    conf.write_bytes(ORIGINAL)
    f.apply()  # then the process dies: no restore; the record stays
    assert (f.state / dns.RECORD).exists() and b"10.99.0.1" in conf.read_bytes()
    record = f.apply()  # the next start: the snapshot is of the original, not of ours
    assert json.loads(record.read_text())["content"] != ""
    dns.restore(record, system=f.system)  # and its stop
    assert conf.read_bytes() == ORIGINAL and not record.exists()


def test_recover_alone_restores_a_killed_runs_change(tmp_path: Path) -> None:
    f = Fake(tmp_path)
    f.system.resolv_conf.write_bytes(ORIGINAL)
    f.apply()
    assert dns.recover(f.state, system=f.system)
    assert f.system.resolv_conf.read_bytes() == ORIGINAL
    assert not dns.recover(f.state, system=f.system)


def test_resolvectl_when_systemd_resolved_runs(tmp_path: Path) -> None:
    f = Fake(tmp_path, tools=("resolvectl", "resolvconf"), resolved=True)
    f.system.resolv_conf.write_bytes(ORIGINAL)
    record = f.apply()
    assert [argv for argv, _ in f.calls] == [
        ["resolvectl", "dns", "tw0", "10.99.0.1", "fd99::1"],
        ["resolvectl", "domain", "tw0", "~.", "corp.example"],  # ~.: every query here
        ["resolvectl", "default-route", "tw0", "yes"],
    ]
    dns.restore(record, system=f.system)
    assert f.calls[-1][0] == ["resolvectl", "revert", "tw0"]
    assert f.system.resolv_conf.read_bytes() == ORIGINAL and not record.exists()


def test_resolvconf_without_systemd_resolved(tmp_path: Path) -> None:
    f = Fake(tmp_path, tools=("resolvectl", "resolvconf"), resolved=False)
    record = f.apply()
    [(argv, stdin)] = f.calls
    assert argv == ["resolvconf", "-a", "tun.tw0", "-m", "0", "-x"]
    assert (
        stdin is not None and "nameserver 10.99.0.1\n" in stdin and "search corp.example" in stdin
    )
    dns.restore(record, system=f.system)
    assert f.calls[-1][0] == ["resolvconf", "-d", "tun.tw0", "-f"] and not record.exists()


def test_a_failing_tool_is_one_error_and_undone(tmp_path: Path) -> None:
    f = Fake(tmp_path, tools=("resolvectl",), resolved=True)
    f.fail = "default-route"
    with pytest.raises(NodeError, match="cannot set the tunnel's DNS through resolvectl"):
        f.apply()
    assert f.calls[-1][0] == ["resolvectl", "revert", "tw0"]
    assert not (f.state / dns.RECORD).exists()


def test_a_missing_resolv_conf_is_missing_again_after(tmp_path: Path) -> None:
    f = Fake(tmp_path)
    record = f.apply()
    assert f.system.resolv_conf.exists()
    dns.restore(record, system=f.system)
    assert not f.system.resolv_conf.exists()
