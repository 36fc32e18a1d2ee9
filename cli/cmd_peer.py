"""`tidewire peer add|remove IFACE PUBKEY ...`: change a running daemon's peers."""

import argparse
from pathlib import Path
from typing import Any

from .control_client import add_socket_argument, change
from .env import Environment
from .exit_status import ExitStatus


def add_parser(sub: Any) -> None:
    p = sub.add_parser("peer", help="add or remove a peer of a running node")
    psub = p.add_subparsers(dest="peer_command", metavar="add|remove", required=True)
    add = psub.add_parser("add", help="add a peer")
    add.add_argument("iface", metavar="IFACE")
    add.add_argument("public_key", metavar="PUBKEY")
    add.add_argument(
        "--endpoint",
        metavar="[SKIN://]HOST:PORT",
        help="where to reach the peer: HOST:PORT (udp), masked://, tcp:// or tls://HOST:PORT,"
        " or relay://KEY (through the peer with that key, base64url)",
    )
    add.add_argument("--allowed-ips", metavar="CIDR[,CIDR...]", default="")
    add.add_argument("--preshared-key-file", metavar="FILE")
    add.add_argument("--keepalive", metavar="SECONDS", type=int, default=0)
    add.add_argument("--mode", choices=["native", "wireguard"], default="native")
    add.add_argument(
        "--move",
        action="store_true",
        help="take allowed IPs that another peer holds (without it, that is refused)",
    )
    add_socket_argument(add)
    add.set_defaults(run=_add)
    rm = psub.add_parser("remove", help="remove a peer")
    rm.add_argument("iface", metavar="IFACE")
    rm.add_argument("public_key", metavar="PUBKEY")
    add_socket_argument(rm)
    rm.set_defaults(run=_remove)


def _add(args: argparse.Namespace, env: Environment) -> int:
    msg: dict[str, Any] = {
        "cmd": "peer_add",
        "public_key": args.public_key,
        "endpoint": args.endpoint,
        "allowed_ips": [s.strip() for s in args.allowed_ips.split(",") if s.strip()],
        "persistent_keepalive": args.keepalive,
        "mode": args.mode,
        "move": args.move,
    }
    if args.preshared_key_file:
        try:
            msg["preshared_key"] = Path(args.preshared_key_file).read_text().strip()
        except OSError as exc:
            env.error(f"cannot read {args.preshared_key_file}: {exc.strerror}")
            return ExitStatus.ERROR
    return change(args, env, msg)


def _remove(args: argparse.Namespace, env: Environment) -> int:
    return change(args, env, {"cmd": "peer_remove", "public_key": args.public_key})
