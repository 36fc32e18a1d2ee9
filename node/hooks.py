"""wg-quick's hooks: PreUp, PostUp, PreDown and PostDown, run as wg-quick runs them.

Each command goes to `bash -c` with every `%i` replaced by the interface name, one
after the other in the order of the file, in a worker thread (never on the event
loop), with the daemon's environment. PreUp runs before anything of the interface
exists, PostUp once it is up (routes and DNS set, packets moving), PreDown before
tear-down, PostDown after it. A failing PreUp or PostUp stops the start (the start
is undone); a failing PreDown or PostDown is logged and the stop goes on. Failures
name the file and line of the command, and bash's "command not found" is said as
such.

Hooks are shell commands run as root, so the file that holds them must be as
trusted as a root-owned script: `refusal` refuses them (and with them the start)
when the file is not owned by the user running the node or is writable by group or
others, or its folder is writable by others without the sticky bit. `tidewire up
--no-hooks` skips them altogether.
"""

import logging
import os
import stat
import subprocess
from pathlib import Path

from .config.service import Hook
from .errors import NodeError

log = logging.getLogger("tidewire.hooks")

HOOK_TIMEOUT = 120  # seconds; wg-quick waits for ever, a stuck hook must not hold a stop
NOT_FOUND = 127  # bash's exit status for a command it cannot find


def expand(command: str, iface: str) -> str:
    """The command as bash gets it: every %i is the interface name (wg-quick(8))."""
    return command.replace("%i", iface)


def run(hooks: list[Hook], *, iface: str, path: Path, check: bool = True) -> None:
    """Run the commands of one hook in order (blocking: call it off the loop).

    With `check`, the first failure raises a NodeError naming the file and line; without,
    failures are logged and the rest still run.
    """
    for h in hooks:
        try:
            _run_one(h, iface=iface, path=path)
        except NodeError as exc:
            if check:
                raise
            log.warning("%s", exc)


def _run_one(h: Hook, *, iface: str, path: Path) -> None:
    where = f"{path}:{h.line}: {h.key}" if h.line else f"{path}: {h.key}"
    command = expand(h.command, iface)
    log.info("[#] %s", command)
    try:
        result = subprocess.run(
            ["bash", "-c", command],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=HOOK_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise NodeError(f"{where}: cannot run the hook: bash is not installed") from None
    except subprocess.TimeoutExpired:
        raise NodeError(f"{where}: `{command}` did not finish within {HOOK_TIMEOUT} s") from None
    for line in (result.stdout + result.stderr).splitlines():
        log.info("%s: %s", h.key, line)
    if result.returncode == 0:
        return
    last = next((x for x in reversed(result.stderr.splitlines()) if x.strip()), "")
    if result.returncode == NOT_FOUND and last.count(": ") >= 2:  # "bash: foo: command not found"
        missing, why = last.rsplit(": ", 2)[-2:]
        raise NodeError(f"{where}: {why.lower()}: {missing!r} (in `{command}`)")
    reason = f"exit status {result.returncode}" if result.returncode > 0 else "killed"
    detail = f": {last.strip()}" if last.strip() else ""
    raise NodeError(f"{where}: `{command}` failed ({reason}){detail}")


def refusal(path: Path, *, uid: int | None = None) -> str | None:
    """Why hooks from `path` must not run, or None: a file others can change would run
    their commands as root."""
    uid = os.geteuid() if uid is None else uid
    try:
        st = os.stat(path)
        folder = os.stat(path.resolve().parent)
    except OSError as exc:
        return f"{path} cannot be checked ({exc.strerror})"
    if st.st_uid != uid:
        return f"{path} is owned by uid {st.st_uid}, not by the user running tidewire ({uid})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{path} is writable by group or others (chmod go-w {path})"
    if folder.st_mode & stat.S_IWOTH and not folder.st_mode & stat.S_ISVTX:
        return f"the folder of {path} is writable by anyone"
    return None
