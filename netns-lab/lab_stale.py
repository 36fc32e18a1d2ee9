"""What a lab killed outright leaves behind, and removing it: its namespaces are named
after the lab's process id (`tw<pid>x...`) and its folder is `tidewire-lab-<name>-<pid>-`,
so a new lab (lab.py) removes those whose process no longer runs."""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

NETNS = re.compile(r"tw(\d+)x\d+")  # a lab namespace's name starts so: the process id
FOLDER = "tidewire-lab-"


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def remove_stale() -> None:
    """Remove the namespaces and folders of labs whose process no longer runs."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for line in listed.splitlines():
        name = line.split(" ", 1)[0]
        match = NETNS.match(name)
        if match and not _alive(int(match[1])):
            delete_netns(name)
    for folder in Path(tempfile.gettempdir()).glob(f"{FOLDER}*-*"):
        owner = folder.name.rsplit("-", 2)[-2]
        if owner.isdigit() and not _alive(int(owner)):
            shutil.rmtree(folder, ignore_errors=True)


def delete_netns(name: str) -> None:
    pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout
    for pid in pids.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
