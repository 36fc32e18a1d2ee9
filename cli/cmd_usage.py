"""`tidewire usage [IFACE] [--json]`: verified and unverified bytes per session."""

import argparse
import time
from typing import Any

from .control_client import add_socket_argument, show
from .env import Environment


def add_parser(sub: Any) -> None:
    p = sub.add_parser("usage", help="show served bandwidth: verified by receipts, and unverified")
    p.add_argument("iface", metavar="IFACE", nargs="?", help="interface of the node")
    add_socket_argument(p)
    p.set_defaults(run=run)


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.2f} MiB"


def render(u: dict[str, Any]) -> str:
    lines = [f"interface: {u['interface']}"]
    if u["sessions"]:
        lines.append("sessions served (client-signed receipts):")
        for s in u["sessions"]:
            last = (
                "never"
                if s["last_receipt"] is None
                else f"{max(0, time.time() - s['last_receipt']):.0f} s ago"
            )
            lines.append(
                f"  {s['client']}  {s['state']}: verified {_mib(s['verified_up'])} up, "
                f"{_mib(s['verified_down'])} down; unverified {_mib(s['unverified'])}; "
                f"last receipt {last}"
            )
    for p in u["unverified_peers"]:
        lines.append(
            f"  {p['peer']}  unverified ({p['kind']}): {_mib(p['unverified_up'])} up, "
            f"{_mib(p['unverified_down'])} down"
        )
    for p in u["providers_used"]:
        state = f"refused: {p['refused']}" if p["refused"] else f"{p['receipts']} receipts signed"
        lines.append(
            f"provider {p['provider']}: sent {_mib(p['sent'])}, received {_mib(p['received'])}; "
            f"signed {_mib(p['signed_up'])} up, {_mib(p['signed_down'])} down; {state}"
        )
    if len(lines) == 1:
        lines.append("  no sessions yet")
    return "\n".join(lines)


def run(args: argparse.Namespace, env: Environment) -> int:
    return show(args, env, "usage", render)
