"""`tidewire up CONFIG [--exit]`: run the node in the foreground, logging to stderr."""

import argparse
import logging
from typing import Any

from .env import Environment
from .exit_status import ExitStatus


def add_parser(sub: Any) -> None:
    p = sub.add_parser("up", help="run a node in the foreground from a TOML or WireGuard config")
    p.add_argument("config", metavar="CONFIG", help="tidewire TOML file or wg-quick .conf file")
    p.add_argument(
        "--exit", action="store_true", help="act as a provider (exit) for this node's peers"
    )
    p.add_argument(
        "--no-offloads",
        action="store_true",
        help="no UDP GSO/GRO and no virtio-net header on the TUN: one packet per system call",
    )
    p.add_argument(
        "--tun-tso",
        action="store_true",
        help="take TCP super-packets from the TUN and cut them in the node (TSO); off by"
        " default: slower than plain reads where the checksums cost more than the reads",
    )
    p.add_argument(
        "--tick-ms",
        type=_tick_ms,
        default=10,
        metavar="MS",
        help="while traffic moved through the tunnel in the last second, wake every MS ms so that"
        " sparse packets find the node awake (lower idle latency); 0 turns it off"
        " (default: 10)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    p.set_defaults(run=run)


def _tick_ms(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        msg = f"{text!r} is not a whole number of milliseconds"
        raise argparse.ArgumentTypeError(msg) from None
    if not 0 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"{value} is out of range (0 to 1000 milliseconds)")
    return value


def run(args: argparse.Namespace, env: Environment) -> int:
    import trio

    from tidewire.node.config import ConfigError, load
    from tidewire.node.daemon import Daemon
    from tidewire.node.errors import NodeError

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=env.stderr,
    )
    try:
        cfg = load(args.config)
    except ConfigError as exc:
        env.error(str(exc))
        return ExitStatus.ERROR
    for warning in cfg.warnings:
        logging.getLogger("tidewire.config").warning(warning)
    try:
        node = Daemon(
            cfg,
            exit_enabled=True if args.exit else None,
            offloads=not args.no_offloads,
            tun_tso=args.tun_tso,
            tick=args.tick_ms / 1000,
        )
        trio.run(node.run)  # in the foreground until it is told to stop
    except NodeError as exc:
        env.error(str(exc))
        return ExitStatus.ERROR
    except KeyboardInterrupt:
        pass
    return ExitStatus.OK
