"""`tidewire routes [IFACE] [--json]`: the overlay routes this node holds, and its exit.

One line per destination of the route exchange (docs/routing.md): the destination's
public key (base64), the next hop, metric, seqno and feasibility distance (seqno,
metric); then the exit `[routing]` chose, with its score (lower is better, node/core/exits.py).
"""

import argparse
from typing import Any

from .control_client import add_node_command, show
from .env import Environment


def add_parser(sub: Any) -> None:
    add_node_command(sub, "routes", "show the overlay routes and the chosen exit", run)


def render(d: dict[str, Any]) -> str:
    lines = []
    if not d["destinations"]:
        lines.append("no overlay routes (no neighbours)")
    for r in d["destinations"]:
        fd = r["feasibility_distance"]
        lines.append(
            f"{r['destination']}  via {r['next_hop'] or '-'}  metric {r['metric']}"
            f"  seqno {r['seqno'] if r['seqno'] is not None else '-'}"
            f"  fd {f'{fd[0]}/{fd[1]}' if fd else '-'}"
        )
    ex = d["exit"]
    if ex is None:
        lines.append("exit: none configured ([routing] is not set)")
    else:
        lines.append(
            f"exit: {ex['exit'] or 'none yet'} ({ex['mode']})"
            + (f", score {ex['score']}" if ex["score"] is not None else "")
            + f", routes {' '.join(ex['routes'])}"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace, env: Environment) -> int:
    return show(args, env, "routes", render)
