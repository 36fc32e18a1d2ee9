"""`tidewire discover [IFACE] [--region R] [--json]`: the providers this node has found.

Records come from the Mainline DHT (a provider's BEP 44 item, found through today's
rendezvous of its region) or from tidewire neighbours by gossip, and are verified
before they are shown; `source` says how each one arrived (dht, gossip, or disk: read
back from the state directory at start). In JSON, `public_key` is the node's link key (base64, as in
`status`) and `record_key` the Ed25519 key its record is stored under (hex).
"""

import argparse
import time
from typing import Any

from .control_client import add_socket_argument, run_call
from .env import Environment
from .exit_status import ExitStatus


def add_parser(sub: Any) -> None:
    p = sub.add_parser("discover", help="show the providers found through gossip and the DHT")
    p.add_argument("iface", metavar="IFACE", nargs="?", help="interface of the node")
    p.add_argument("--region", metavar="R", help="only providers of this region tag")
    add_socket_argument(p)
    p.set_defaults(run=run)


def render(d: dict[str, Any]) -> str:
    dht, gossip = d["dht"], d.get("gossip", {})
    lines = [
        (
            f"DHT: port {dht['port']}, {dht['nodes']} nodes known"
            if dht["port"] is not None
            else "DHT: off"
        )
        + f", region {dht['region'] or '-'}"
        + (f", own record seq {dht['published_seq']}" if dht["published_seq"] else ""),
        f"gossip: {gossip.get('neighbours', 0)} neighbours",
    ]
    if not d["providers"]:
        lines.append("  no providers found yet")
    for p in d["providers"]:
        left = max(0, p["expiry"] - time.time())
        rate = f"{p['capacity'] / 1e6:.0f} Mbit/s" if p["capacity"] else "unlimited"
        lines.append(
            f"  {p['public_key']}  {p['region']}  load {p['load']}%  {rate}  "
            f"via {p['source']}, expires in {left / 60:.0f} min"
        )
        lines.append(f"      {' '.join(p['endpoints'])}")
    return "\n".join(lines)


def run(args: argparse.Namespace, env: Environment) -> int:
    req: dict[str, Any] = {"cmd": "discover"}
    if args.region is not None:
        req["region"] = args.region
    reply = run_call(args, env, req)
    if reply is None:
        return ExitStatus.ERROR
    data = reply["discover"]
    env.emit(data, render(data))
    return ExitStatus.OK
