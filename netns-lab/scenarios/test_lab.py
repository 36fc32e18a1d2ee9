"""The lab library itself: what a lab leaves behind, and what the next one clears."""

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from lab import Lab


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split(" ", 1)[0] for line in out.stdout.splitlines()}


def test_a_clean_lab_leaves_nothing_behind() -> None:
    with Lab("clean") as lab:
        host = lab.host("h")
        folder = lab.tmp
        assert host.netns in _namespaces() and folder.is_dir()
    assert host.netns not in _namespaces()
    assert not folder.exists()  # its configs hold private keys


def test_a_killed_lab_is_cleared_by_the_next_one() -> None:
    here = Path(__file__).resolve().parents[1]
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                sys.path.insert(0, {str(here)!r})
                from lab import Lab
                lab = Lab("kill")
                host = lab.host("h")
                print(host.netns, lab.tmp, flush=True)
                time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    netns, folder = child.stdout.readline().split()
    child.send_signal(signal.SIGKILL)  # no teardown at all
    child.wait(timeout=10)
    assert netns in _namespaces() and Path(folder).is_dir()
    with Lab("next"):
        assert netns not in _namespaces()
        assert not Path(folder).exists()
