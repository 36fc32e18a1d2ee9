"""`tidewire down IFACE`: ask a running daemon to stop and clean up."""

import argparse
from typing import Any

from .control_client import add_socket_argument, change
from .env import Environment


def add_parser(sub: Any) -> None:
    p = sub.add_parser("down", help="stop a running node")
    p.add_argument("iface", metavar="IFACE", nargs="?", help="interface of the node")
    add_socket_argument(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace, env: Environment) -> int:
    return change(args, env, {"cmd": "down"})
