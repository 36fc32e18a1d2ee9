"""Forwarding is one switch per network namespace, shared by every exit daemon in it: the
last holder to stop restores the value from before the first, even after a kill -9."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tidewire.node import firewall
from tidewire.node.errors import NodeError

V4, V6 = "net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"


@pytest.fixture
def sysctl(tmp_path: Path) -> Path:
    root = tmp_path / "sys"
    for name in (V4, V6):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("0\n")
    return root


def values(root: Path) -> tuple[str, str]:
    return (root / V4).read_text().strip(), (root / V6).read_text().strip()


def test_the_last_of_two_holders_restores(sysctl: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = firewall.enable_forwarding(sysctl_root=sysctl, run_dir=run, pid=os.getpid())
    assert values(sysctl) == ("1", "1")
    (state,) = run.glob("forwarding-*.json")  # written before the switches moved
    assert json.loads(state.read_text())["original"] == {V4: "0", V6: "0"}
    second = firewall.enable_forwarding(sysctl_root=sysctl, run_dir=run, pid=os.getppid())
    firewall.restore_forwarding(first)
    assert values(sysctl) == ("1", "1"), "the second daemon still forwards"
    firewall.restore_forwarding(second)
    assert values(sysctl) == ("0", "0")
    assert not list(run.glob("forwarding-*.json"))


def test_a_killed_holder_is_noticed_and_the_original_restored(sysctl: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    (sysctl / V6).write_text("1\n")  # the operator forwards IPv6 anyway
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        firewall.enable_forwarding(sysctl_root=sysctl, run_dir=run, pid=child.pid)
    finally:
        child.kill()  # kill -9: it never restores
        child.wait()
    assert values(sysctl) == ("1", "1")
    again = firewall.enable_forwarding(sysctl_root=sysctl, run_dir=run, pid=os.getpid())
    firewall.restore_forwarding(again)
    assert values(sysctl) == ("0", "1")


def test_a_switch_that_cannot_be_set_is_one_clear_error(sysctl: Path, tmp_path: Path) -> None:
    (sysctl / V6).unlink()
    with pytest.raises(NodeError, match=r"cannot read .*forwarding"):
        firewall.enable_forwarding(sysctl_root=sysctl, run_dir=tmp_path / "run")
    assert values_v4(sysctl) == "0"


def values_v4(root: Path) -> str:
    return (root / V4).read_text().strip()


def test_any_start_restores_what_killed_holders_left(sysctl: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert not firewall.recover_forwarding(sysctl_root=sysctl, run_dir=run)  # nothing recorded
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        firewall.enable_forwarding(sysctl_root=sysctl, run_dir=run, pid=child.pid)
        assert not firewall.recover_forwarding(sysctl_root=sysctl, run_dir=run)  # alive: kept
        assert values(sysctl) == ("1", "1")
    finally:
        child.kill()  # kill -9: it never restores
        child.wait()
    assert firewall.recover_forwarding(sysctl_root=sysctl, run_dir=run)
    assert values(sysctl) == ("0", "0") and not list(run.glob("forwarding-*.json"))
