"""`tidewire service install [--systemd|--procd] [--prefix DIR]`: run nodes as a service.

The package ships a systemd template unit (`tidewire@.service`: `systemctl enable --now
tidewire@tw0` runs `tidewire up tw0`) and an OpenWrt procd init script (one instance per
/etc/tidewire/NAME.toml), in cli/service/. This writes the one for this machine's
service manager (systemd when /run/systemd/system exists, procd when /sbin/procd does;
or as told) to /etc/systemd/system or /etc/init.d under DIR (default /), with the path
of this `tidewire` command in its command line, and says what to run next.
"""

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from .env import Environment
from .exit_status import ExitStatus

SERVICE = Path(__file__).resolve().parent / "service"
# manager -> (shipped file, where it goes under the prefix, its mode, the command in it)
FILES = {
    "systemd": (
        "tidewire@.service",
        "etc/systemd/system/tidewire@.service",
        0o644,
        "ExecStart=/usr/local/bin/tidewire ",
    ),
    "procd": ("tidewire.init", "etc/init.d/tidewire", 0o755, "PROG=/usr/bin/tidewire"),
}
NEXT = {
    "systemd": [
        "systemctl daemon-reload",
        "systemctl enable --now tidewire@NAME",
    ],
    "procd": ["/etc/init.d/tidewire enable", "/etc/init.d/tidewire start"],
}


def add_parser(sub: Any) -> None:
    p = sub.add_parser("service", help="install tidewire as a systemd or procd service")
    ssub = p.add_subparsers(dest="service_command", metavar="install", required=True)
    inst = ssub.add_parser(
        "install", help="write the systemd unit or the OpenWrt init script, say what to run next"
    )
    which = inst.add_mutually_exclusive_group()
    which.add_argument("--systemd", action="store_true", help="the systemd unit tidewire@.service")
    which.add_argument("--procd", action="store_true", help="the OpenWrt init script")
    inst.add_argument(
        "--prefix",
        metavar="DIR",
        default="/",
        help="install under DIR instead of / (for packages and images)",
    )
    inst.add_argument(
        "--command",
        dest="exec_command",  # not `command`: main.py dispatches on that
        metavar="PATH",
        help="the tidewire command the service runs (default: this one)",
    )
    inst.set_defaults(run=run)


def _manager(args: argparse.Namespace) -> str | None:
    if args.systemd or args.procd:
        return "systemd" if args.systemd else "procd"
    if Path("/run/systemd/system").is_dir():
        return "systemd"
    if Path("/sbin/procd").exists():
        return "procd"
    return None


def this_command() -> str:
    """How a service starts this installation of tidewire: its console script, or python -m."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "tidewire" and os.access(argv0, os.X_OK):
        return str(argv0.absolute())
    found = shutil.which("tidewire")
    return found or f"{sys.executable} -m tidewire.cli.main"


def render(manager: str, command: str) -> str:
    """The shipped file with `command` where it starts tidewire."""
    name, _, _, line = FILES[manager]
    text = (SERVICE / name).read_text()
    assert line in text, f"{name} no longer holds {line!r}"
    start = line.split("=", 1)[0] + "="
    return text.replace(line, start + command + (" " if line.endswith(" ") else ""))


def run(args: argparse.Namespace, env: Environment) -> int:
    manager = _manager(args)
    if manager is None:
        env.error("neither systemd nor procd runs here; give --systemd or --procd")
        return ExitStatus.USAGE
    prefix = Path(args.prefix)
    if prefix == Path("/") and os.geteuid() != 0:
        env.error("writing to /etc needs root: run as root, or give --prefix DIR")
        return ExitStatus.ERROR
    command = args.exec_command or this_command()
    _, place, mode, _ = FILES[manager]
    dest = prefix / place
    text = render(manager, command)
    tmp = dest.with_name(f".{dest.name}.tmp")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text)
        tmp.chmod(mode)
        os.replace(tmp, dest)
    except OSError as exc:
        env.error(f"cannot write {exc.filename or dest}: {exc.strerror}")
        return ExitStatus.ERROR
    if manager == "systemd" and command.startswith(("/home/", "/root/")):
        env.error(
            f"note: {command.split()[0]} is under /home or /root, which the unit's"
            " ProtectHome=yes hides; install tidewire elsewhere or give --command"
        )
    lines = [f"wrote {dest}", "next, as root:", *(f"  {c}" for c in NEXT[manager])]
    lines.append(
        "(NAME: the interface; its config is /etc/tidewire/NAME.toml or /etc/wireguard/NAME.conf)"
        if manager == "systemd"
        else "(one instance per /etc/tidewire/NAME.toml; logs: logread -e tidewire)"
    )
    env.emit(
        {"manager": manager, "file": str(dest), "command": command, "next": NEXT[manager]},
        "\n".join(lines),
    )
    return ExitStatus.OK
