"""`tidewire reload [IFACE] [--json]`: re-read a running node's config and apply the difference.

As `wg syncconf`: peers added, removed and changed (their sessions stay), [share],
the exit's rules and DNS take effect at once; what cannot change while the node runs
(its key, listeners, addresses, ...) is listed as needing a restart. A config that
does not load changes nothing: the daemon's one sentence and exit status 1. SIGHUP to
the daemon does the same, with the outcome in the daemon's log.
"""

import argparse
from typing import Any

from .control_client import add_socket_argument, show
from .env import Environment


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "reload", help="re-read a running node's config and apply the changes (as wg syncconf)"
    )
    p.add_argument("iface", metavar="IFACE", nargs="?", help="interface of the node")
    add_socket_argument(p)
    p.set_defaults(run=run)


def render(r: dict[str, Any]) -> str:
    lines = [f"reloaded {r['config']}"]
    peers = r["peers"]
    lines += [f"  peer added:    {key}" for key in peers["added"]]
    lines += [f"  peer removed:  {key}" for key in peers["removed"]]
    lines += [
        f"  peer changed:  {key} ({', '.join(fields)})" for key, fields in peers["changed"].items()
    ]
    if r["share"]:
        lines.append(f"  share:         {', '.join(r['share'])}")
    if r["exit_policy"]:
        lines.append("  exit policy:   new allow and deny rules")
    if r["dns"]:
        lines.append("  dns:           new servers and search domains")
    if r.get("relay"):
        lines.append(f"  relay:         {', '.join(r['relay'])}")
    if not r["changed"]:
        lines.append("  nothing to change")
    if r["restart_needed"]:
        lines.append(f"  needs a restart (still as it runs): {', '.join(r['restart_needed'])}")
    return "\n".join(lines)


def run(args: argparse.Namespace, env: Environment) -> int:
    return show(args, env, "reload", render)
