"""`tidewire up CONFIG [--exit]`: run the node in the foreground, logging to stderr.

It stays in the foreground (a service manager runs it as it is: systemd's Type=notify
hears READY=1 from it, node/sdnotify.py) and logs to stderr, in the journal's own
format when stderr is the journal (node/logs.py); -v and -q move the level.

CONFIG is a path, or a bare name (`tidewire up wg0`) looked up as wg-quick does:
/etc/tidewire/wg0.toml, then /etc/wireguard/wg0.conf (node/config/locate.py).

Before the daemon starts, the config is checked against this machine (the exit's
outbound interface exists, every endpoint resolves, each hook's command exists), so
those errors name the file and line too. `--no-hooks` skips PreUp/PostUp/PreDown/
PostDown (node/hooks.py says when they are refused). An error the running node
stops on (a NodeError or an OSError, alone or inside the ExceptionGroup of a nursery)
becomes one sentence and exit status 1.
"""

import argparse
import logging
from typing import Any

from .env import Environment
from .exit_status import ExitStatus


def add_parser(sub: Any) -> None:
    p = sub.add_parser("up", help="run a node in the foreground from a TOML or WireGuard config")
    p.add_argument(
        "config",
        metavar="CONFIG",
        help="tidewire TOML file or wg-quick .conf file, or a NAME: /etc/tidewire/NAME.toml"
        " or else /etc/wireguard/NAME.conf",
    )
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
        help="take TCP super-packets from the TUN and cut them in the node (TSO); the"
        " default on the native data plane, which cuts them natively; off by default on the"
        " Python one, where the checksums cost more than the reads",
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
    p.add_argument(
        "--no-hooks",
        action="store_true",
        help="do not run the config's PreUp/PostUp/PreDown/PostDown commands (they are"
        " refused anyway, and the start with them, when the file is not owned by the user"
        " running tidewire or is writable by group or others)",
    )
    p.add_argument(
        "--dataplane",
        choices=("native", "python"),
        default=None,
        help="who seals and opens the established sessions' packets: the native module"
        " (Rust, when built and its self-test passes) or the Python path (default: native"
        " when built)",
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="log more: debug messages")
    p.add_argument(
        "-q",
        "--quiet",
        action="count",
        default=0,
        help="log less: warnings and errors only (twice: errors only)",
    )
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
    from tidewire.node.config.locate import find_config
    from tidewire.node.config.system import (
        check_system,
        command_exists,
        interface_exists,
        resolve,
    )
    from tidewire.node.daemon import Daemon
    from tidewire.node.logs import configure

    configure(verbosity=args.verbose - args.quiet, stream=env.stderr)  # journald-aware
    exit_enabled = True if args.exit else None
    try:
        cfg = load(find_config(args.config, env.config_dirs))
        check_system(
            cfg,
            exit_enabled=bool(exit_enabled or cfg.exit.enabled),
            interface_exists=interface_exists,
            resolve=resolve,
            command_exists=None if args.no_hooks else command_exists,
        )
    except ConfigError as exc:
        env.error(str(exc))
        return ExitStatus.ERROR
    for warning in cfg.warnings:
        logging.getLogger("tidewire.config").warning(warning)
    try:
        node = Daemon(
            cfg,
            exit_enabled=exit_enabled,
            offloads=not args.no_offloads,
            tun_tso=args.tun_tso,
            tick=args.tick_ms / 1000,
            run_hooks=not args.no_hooks,
            dataplane=args.dataplane,
        )
        trio.run(node.run)  # in the foreground until it is told to stop
    except (Exception, KeyboardInterrupt) as exc:
        if not _only(exc, KeyboardInterrupt):
            sentence = _sentence(exc)
            if sentence is None:
                raise  # a bug: its traceback is the useful report
            env.error(sentence)
            return ExitStatus.ERROR
    env.emit({"interface": cfg.name, "stopped": True})  # under --json; logs stay on stderr
    return ExitStatus.OK


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for e in exc.exceptions for leaf in _leaves(e)]
    return [exc]


def _only(exc: BaseException, kind: type[BaseException]) -> bool:
    return all(isinstance(leaf, kind) for leaf in _leaves(exc))


def _sentence(exc: BaseException) -> str | None:
    """One sentence for an operator's error (NodeError, OSError), None for anything else."""
    from tidewire.node.errors import NodeError

    leaves = [leaf for leaf in _leaves(exc) if not isinstance(leaf, KeyboardInterrupt)]
    if not leaves or not all(isinstance(leaf, NodeError | OSError) for leaf in leaves):
        return None
    first = leaves[0]  # the one that stopped the node; the rest were cancelled with it
    if isinstance(first, NodeError):
        return str(first)
    assert isinstance(first, OSError)
    where = f" ({first.filename})" if first.filename else ""
    return f"the node stopped: {first.strerror or first}{where}"
