"""The client's DNS while the tunnel is up: its resolvers, so no query leaks around it.

One of three mechanisms, chosen at start by what the system has, as wg-quick and
its successors do:

- `resolvectl` when systemd-resolved runs (its runtime folder exists): the servers
  and search domains go on the tunnel link, with the routing domain `~.` and the
  default route, so every query goes to the tunnel's servers; `resolvectl revert`
  undoes it, and the link's end (even after kill -9) drops it too.
- `resolvconf` (Debian's or openresolv): the tunnel's lines are added under the
  name `tun.IFACE`, marked exclusive (-x) and first (-m 0); `resolvconf -d` removes
  them.
- otherwise resolv.conf itself is replaced, and put back as it was (its text and
  mode, or the symbolic link it was) at stop. It is written in place, never
  renamed over: it may be a bind mount (`ip netns exec` makes one).

Before anything changes, a record of what to undo is written atomically to the
state directory (`dns.json`). A clean stop undoes it and deletes the record; a
kill -9 leaves the record behind, and the next start undoes it first, so the
operator's resolver settings are back before the new ones go in. Paths and the
command runner are parameters, so tests run against a fake /etc.
"""

import base64
import json
import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import NodeError
from .state import atomic_write

log = logging.getLogger("tidewire.dns")

RECORD = "dns.json"
RESOLVED_RUNTIME = Path("/run/systemd/resolve")  # exists while systemd-resolved runs

Runner = Callable[[Sequence[str], str | None], None]


def run_command(argv: Sequence[str], stdin: str | None) -> None:
    """Run a resolver tool; NodeError with its complaint if it fails."""
    try:
        result = subprocess.run(list(argv), input=stdin, text=True, capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NodeError(f"cannot run {argv[0]}: {exc}") from None
    if result.returncode != 0:
        raise NodeError(f"`{' '.join(argv)}` failed: {result.stderr.strip() or 'no reason'}")


@dataclass
class System:
    """Where the resolver settings live; tests point it at a temporary folder."""

    resolv_conf: Path = Path("/etc/resolv.conf")
    resolved_runtime: Path = RESOLVED_RUNTIME
    which: Callable[[str], str | None] = shutil.which
    run: Runner = run_command

    def mechanism(self) -> str:
        if self.which("resolvectl") and self.resolved_runtime.is_dir():
            return "resolvectl"
        if self.which("resolvconf"):
            return "resolvconf"
        return "file"


@dataclass
class DnsSettings:
    servers: list[str]
    search: list[str] = field(default_factory=list)

    def resolv_conf(self, iface: str) -> str:
        lines = [f"# written by tidewire while {iface} is up; restored when it stops"]
        lines += [f"nameserver {s}" for s in self.servers]
        if self.search:
            lines.append("search " + " ".join(self.search))
        return "\n".join(lines) + "\n"


def apply(
    settings: DnsSettings, *, iface: str, state_dir: Path, system: System | None = None
) -> Path:
    """Put the tunnel's DNS in place (blocking: call it off the loop); return the record
    that `restore` takes. A record left by a killed run is undone first."""
    system = system or System()
    record = state_dir / RECORD
    recover(state_dir, system=system)
    how = system.mechanism()
    undo: dict[str, Any] = {"mechanism": how, "iface": iface}
    if how == "file":
        undo.update(_snapshot(system.resolv_conf))
    atomic_write(record, json.dumps(undo, indent=1).encode())
    try:
        if how == "resolvectl":
            system.run(["resolvectl", "dns", iface, *settings.servers], None)
            system.run(["resolvectl", "domain", iface, "~.", *settings.search], None)
            system.run(["resolvectl", "default-route", iface, "yes"], None)
        elif how == "resolvconf":
            text = settings.resolv_conf(iface)
            system.run(["resolvconf", "-a", f"tun.{iface}", "-m", "0", "-x"], text)
        else:
            _write_in_place(system.resolv_conf, settings.resolv_conf(iface).encode())
    except (NodeError, OSError) as exc:
        restore(record, system=system)
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise NodeError(f"cannot set the tunnel's DNS through {how}: {reason}") from None
    log.info("DNS through %s: %s", how, ", ".join(settings.servers + settings.search))
    return record


def recover(state_dir: Path, *, system: System | None = None) -> bool:
    """Undo what a killed run left; True if there was something."""
    record = state_dir / RECORD
    if not record.exists():
        return False
    log.warning("restoring the DNS settings a killed run of this interface left changed")
    restore(record, system=system or System())
    return True


def restore(record: Path, *, system: System | None = None) -> None:
    """Undo `apply` and forget the record. Best effort: it runs on the way out."""
    system = system or System()
    try:
        undo = json.loads(record.read_text())
        how, iface = undo["mechanism"], str(undo["iface"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("cannot read the DNS record %s (%s); leaving DNS as it is", record, exc)
        record.unlink(missing_ok=True)
        return
    try:
        if how == "resolvectl":
            system.run(["resolvectl", "revert", iface], None)
        elif how == "resolvconf":
            system.run(["resolvconf", "-d", f"tun.{iface}", "-f"], None)
        elif how == "file":
            _put_back(system.resolv_conf, undo)
    except (NodeError, OSError, ValueError, KeyError) as exc:
        # the tunnel's link is gone; a resolvectl or resolvconf entry for it is harmless
        log.warning("restoring DNS through %s: %s", how, exc)
    record.unlink(missing_ok=True)


def _snapshot(path: Path) -> dict[str, Any]:
    """What resolv.conf is now: a symbolic link's target, or its bytes and mode."""
    if path.is_symlink():
        return {"symlink": os.readlink(path)}
    try:
        data, mode = path.read_bytes(), path.stat().st_mode & 0o7777
    except FileNotFoundError:
        return {"absent": True}
    except OSError as exc:
        raise NodeError(f"cannot read {path}: {exc.strerror}") from None
    return {"content": base64.b64encode(data).decode(), "mode": mode}


def _write_in_place(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write the file's bytes without renaming (a bind mount cannot be renamed over);
    a symbolic link is replaced by a file, so its target is left alone."""
    if path.is_symlink():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _put_back(path: Path, undo: dict[str, Any]) -> None:
    if "symlink" in undo:
        if path.is_symlink() or path.exists():
            path.unlink()
        os.symlink(str(undo["symlink"]), path)
    elif undo.get("absent"):
        path.unlink(missing_ok=True)
    else:
        _write_in_place(path, base64.b64decode(undo["content"], validate=True))
        os.chmod(path, int(undo["mode"]))
