"""`tidewire down IFACE`: ask a running daemon to stop and clean up."""

import argparse
from typing import Any

from .control_client import add_socket_argument, run_call
from .env import Environment
from .exit_status import ExitStatus


def add_parser(sub: Any) -> None:
    p = sub.add_parser("down", help="stop a running node")
    p.add_argument("iface", metavar="IFACE", nargs="?", help="interface of the node")
    add_socket_argument(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace, env: Environment) -> int:
    return ExitStatus.OK if run_call(args, env, {"cmd": "down"}) is not None else ExitStatus.ERROR
