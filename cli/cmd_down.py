"""`tidewire down IFACE`: ask a running daemon to stop and clean up.

When no daemon runs for IFACE any more (it was killed: its lock beside the control
socket is free), `down` removes what it left in force: the kill switch first (it is
meant to outlive the daemon, and this is how the operator lets traffic out again),
its other nftables tables, and the forwarding switches if no exit holds them. A later
`tidewire up` clears the rest (routing rules, DNS) from the state directory.
"""

import argparse
import contextlib
import fcntl
import os
from pathlib import Path
from typing import Any

from .control_client import ClientError, add_socket_argument, change, socket_path
from .env import Environment
from .exit_status import ExitStatus


def add_parser(sub: Any) -> None:
    p = sub.add_parser("down", help="stop a running node (or remove what a killed one left)")
    p.add_argument("iface", metavar="IFACE", nargs="?", help="interface of the node")
    add_socket_argument(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace, env: Environment) -> int:
    try:
        path = socket_path(args)
    except ClientError as exc:
        env.error(str(exc))
        return ExitStatus.ERROR
    iface = args.iface or path.stem
    if args.iface and not _daemon_alive(path.with_suffix(".lock")):
        from tidewire.node.config import ifname_problem

        if ifname_problem(iface) is None and _clean_up_after(iface):
            env.emit(
                {"interface": iface, "removed": ["kill_switch"]},
                f"{iface}: removed the kill switch a stopped daemon left",
            )
            return ExitStatus.OK
    return change(args, env, {"cmd": "down"})


def _daemon_alive(lock: Path) -> bool:
    """Whether a daemon holds the interface's lock (a dead one's lock is free)."""
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _clean_up_after(iface: str) -> bool:
    """Remove the tables a killed daemon of `iface` left; True if there was a kill switch."""
    from tidewire.node import firewall, killswitch
    from tidewire.node.errors import NodeError

    found = killswitch.remove(iface)
    with contextlib.suppress(NodeError):  # no nft: there is no table either
        firewall.remove(iface)
    firewall.remove_guard(iface)
    firewall.recover_forwarding()
    return found
