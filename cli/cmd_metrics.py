"""`tidewire metrics [IFACE]`: every counter of a running node, in the Prometheus text format."""

import argparse
from typing import Any

from .control_client import add_socket_argument, run_call
from .env import Environment
from .exit_status import ExitStatus


def add_parser(sub: Any) -> None:
    p = sub.add_parser("metrics", help="print a running node's counters (Prometheus text)")
    p.add_argument("iface", metavar="IFACE", nargs="?", help="interface of the node")
    add_socket_argument(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace, env: Environment) -> int:
    reply = run_call(args, env, {"cmd": "metrics"})
    if reply is None:
        return ExitStatus.ERROR
    env.stdout.write(reply["metrics"])
    return ExitStatus.OK
