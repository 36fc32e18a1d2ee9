"""`tidewire report [IFACE] --epoch N -o FILE`: the provider's signed epoch report.

`--epoch current` is the node's current epoch: the daemon resolves it with its own
epoch length (`[accounting] epoch_seconds`) and clock, so the report covers the
window the node is counting; the report says which epoch that was.
"""

import argparse
import json
import os
from typing import Any

from .control_client import add_socket_argument, run_call
from .env import Environment
from .exit_status import ExitStatus


def add_parser(sub: Any) -> None:
    p = sub.add_parser("report", help="write the signed usage report of one epoch")
    p.add_argument("iface", metavar="IFACE", nargs="?", help="interface of the node")
    p.add_argument(
        "--epoch",
        required=True,
        metavar="N",
        help="epoch number (Unix time // epoch length), or 'current'",
    )
    p.add_argument("-o", "--output", required=True, metavar="FILE")
    add_socket_argument(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace, env: Environment) -> int:
    epoch: int | str
    if args.epoch == "current":
        epoch = "current"
    elif args.epoch.isascii() and args.epoch.isdigit() and len(args.epoch) <= 18:
        epoch = int(args.epoch)
    else:
        env.error(f"--epoch: {args.epoch!r} is not a non-negative integer or 'current'")
        return ExitStatus.USAGE
    reply = run_call(args, env, {"cmd": "report", "epoch": epoch})
    if reply is None:
        return ExitStatus.ERROR
    data = json.dumps(reply["report"], indent=1, sort_keys=True) + "\n"
    tmp = f"{args.output}.tmp"
    try:
        with open(tmp, "w") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, args.output)
    except OSError as exc:
        env.error(f"cannot write {args.output}: {exc.strerror}")
        return ExitStatus.ERROR
    report = reply["report"]
    totals = report["totals"]
    epoch = report.get("epoch", epoch)
    sessions, verified = len(report["sessions"]), totals["verified_up"] + totals["verified_down"]
    env.emit(
        {"epoch": epoch, "file": args.output, "sessions": sessions, "verified_bytes": verified},
        f"epoch {epoch}: {sessions} sessions, {verified} verified bytes -> {args.output}",
    )
    return ExitStatus.OK
