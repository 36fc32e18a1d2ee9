"""`tidewire exits [IFACE] [--json]`: the providers this node knows and their scores.

The score is a cost, lower is better: (metric + 20 ms) x (1 + load) x (1 + price per
GiB in tokens), with the metric measured (the route exchange's, or the session's RTT
and loss) or 250 ms before any measurement (node/core/exits.py, docs/routing.md).
`eligible` says whether `[routing]`'s max_price, region and avoid let it be chosen;
`current` marks the chosen exit, `better_for` how long another has been more than
10% better (it takes over after 180 s of that). On a provider with `[exit] open`,
`open_admission` counts the clients admitted, refused and forgotten.
"""

import argparse
from typing import Any

from .control_client import add_node_command, show
from .env import Environment


def add_parser(sub: Any) -> None:
    add_node_command(sub, "exits", "show the known providers and their scores", run)


def render(d: dict[str, Any]) -> str:
    lines = []
    if "open_admission" in d:  # a provider with [exit] open
        counts = ", ".join(f"{k} {v}" for k, v in sorted(d["open_admission"].items()))
        lines.append(f"open admission: {counts}")
    if d.get("mode") is None:
        return "\n".join([*lines, "no exit choice: [routing] is not set"])
    lines.append(f"exit: {d['exit'] or 'none yet'} ({d['mode']})")
    if not d["providers"]:
        lines.append("  no providers known yet")
    for p in d["providers"]:
        metric = f"{p['metric_ms']} ms" if p["metric_ms"] is not None else "unmeasured"
        up = {True: "up", False: "down", None: "?"}[p["up"]]
        flags = ("*" if p["current"] else " ") + ("" if p["eligible"] else " (filtered)")
        lines.append(
            f"{flags} {p['public_key']}  score {p['score']}  {metric}  {up}"
            f"  price {p['price']}  load {p['load']}%  {p['region'] or '-'}"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace, env: Environment) -> int:
    return show(args, env, "exits", render)
