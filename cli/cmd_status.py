"""`tidewire status [IFACE] [--json]`: what `wg show` tells, plus exit-policy and drop counts."""

import argparse
import time
from typing import Any

from .control_client import add_socket_argument, show
from .env import Environment


def add_parser(sub: Any) -> None:
    p = sub.add_parser("status", help="show a running node's peers and counters")
    p.add_argument("iface", metavar="IFACE", nargs="?", help="interface of the node")
    add_socket_argument(p)
    p.set_defaults(run=run)


def _ago(ts: float | None) -> str:
    if ts is None:
        return "never"
    secs = max(0, int(time.time() - ts))
    return f"{secs} s ago" if secs < 120 else f"{secs // 60} min ago"


def _bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _paths(p: dict[str, Any]) -> list[str]:
    """A native peer's candidate paths, one line each (the active one starred)."""
    if "candidates" not in p:
        return []
    out = [f"  paths ({p['role']}, {p['switches']} switches):"]
    for c in p["candidates"]:
        rtt = "-" if c["rtt_ms"] is None else f"{c['rtt_ms']} ms"
        loss = "-" if c["loss"] is None else f"{c['loss']:.0%}"
        last = "never" if c["last_reply"] is None else f"{c['last_reply']} s ago"
        mark = "*" if c["active"] else " "
        out.append(
            f"   {mark} {c['transport']}://{c['endpoint']}  {c['state']}  rtt {rtt}"
            f"  loss {loss}  last reply {last}" + ("  (learned)" if c["learned"] else "")
        )
    return out


def render(st: dict[str, Any]) -> str:
    lines = [
        f"interface: {st['interface']}",
        f"  public key: {st['public_key']}",
        f"  listening port: {st['listen_port']}",
    ]
    if "dataplane" in st:  # a node from before the native plane does not say
        lines.append(f"  data plane: {st['dataplane']} ({st.get('dataplane_why', '')})")
    if st.get("queues"):
        lines.append(f"  queues: {st['queues']}")
    ex = st["exit"]
    if ex["enabled"]:
        refused = ", ".join(f"{k} {v}" for k, v in sorted(ex["refused"].items())) or "none"
        lines.append(f"  exit: via {ex['outbound_interface']}; refused: {refused}")
    drops = ", ".join(f"{k} {v}" for k, v in sorted(st["drops"].items()) if v)
    lines.append(f"  dropped: {drops or 'none'}")
    for p in st["peers"]:
        lines += [
            "",
            f"peer: {p['public_key']} ({p['mode']})",
            f"  endpoint: {p['endpoint'] or '(none)'}",
            f"  allowed ips: {', '.join(p['allowed_ips']) or '(none)'}",
            f"  latest handshake: {_ago(p['latest_handshake'])}",
            f"  transfer: {_bytes(p['rx_bytes'])} received, {_bytes(p['tx_bytes'])} sent",
        ]
        if p["persistent_keepalive"]:
            lines.append(f"  persistent keepalive: every {p['persistent_keepalive']} seconds")
        lines += _paths(p)
    return "\n".join(lines)


def run(args: argparse.Namespace, env: Environment) -> int:
    return show(args, env, "status", render)
