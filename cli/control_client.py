"""Finding a daemon's control socket and talking to it, with one-sentence errors."""

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tidewire.node.control import request

from .env import Environment
from .exit_status import ExitStatus

RUN_DIR = Path("/run/tidewire")


class ClientError(Exception):
    pass


def add_socket_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--socket", metavar="PATH", help="control socket (default /run/tidewire/IFACE.sock)"
    )


def add_node_command(sub: Any, name: str, help_text: str, run: Callable[..., int]) -> Any:
    """A command that asks one node: `tidewire NAME [IFACE] [--socket PATH]`."""
    p = sub.add_parser(name, help=help_text)
    p.add_argument("iface", metavar="IFACE", nargs="?", help="interface of the node")
    add_socket_argument(p)
    p.set_defaults(run=run)
    return p


def socket_path(args: argparse.Namespace) -> Path:
    if getattr(args, "socket", None):
        return Path(args.socket)
    iface = getattr(args, "iface", None)
    if iface:
        return RUN_DIR / f"{iface}.sock"
    running = sorted(RUN_DIR.glob("*.sock")) if RUN_DIR.exists() else []
    if len(running) == 1:
        return running[0]
    if not running:
        raise ClientError("no tidewire daemon is running (no control socket in /run/tidewire)")
    names = ", ".join(p.stem for p in running)
    raise ClientError(f"several daemons are running ({names}); name the interface")


def call(args: argparse.Namespace, message: dict[str, Any]) -> dict[str, Any]:
    path = socket_path(args)
    try:
        reply = request(path, message)
    except FileNotFoundError:
        raise ClientError(f"no daemon at {path} (is `tidewire up` running for it?)") from None
    except PermissionError:
        raise ClientError(f"no permission to use {path}; run as root") from None
    except (ConnectionError, OSError) as exc:
        raise ClientError(f"cannot talk to the daemon at {path}: {exc}") from None
    except (ValueError, json.JSONDecodeError):
        raise ClientError(f"the daemon at {path} sent a malformed reply") from None
    if not reply.get("ok"):
        raise ClientError(str(reply.get("error", "the daemon refused the request")))
    return reply


def run_call(
    args: argparse.Namespace, env: Environment, message: dict[str, Any]
) -> dict[str, Any] | None:
    try:
        return call(args, message)
    except ClientError as exc:
        env.error(str(exc))
        return None


def change(args: argparse.Namespace, env: Environment, message: dict[str, Any]) -> int:
    """Ask the daemon for a change that answers nothing; under --json, say what was done."""
    if run_call(args, env, message) is None:
        return ExitStatus.ERROR
    env.emit({"ok": True, **{k: v for k, v in message.items() if k != "preshared_key"}})
    return ExitStatus.OK


def show(
    args: argparse.Namespace, env: Environment, cmd: str, render: Callable[[dict[str, Any]], str]
) -> int:
    """Ask the daemon for `cmd` and print its answer: a table, or stable JSON with --json."""
    reply = run_call(args, env, {"cmd": cmd})
    if reply is None:
        return ExitStatus.ERROR
    data = reply[cmd]
    env.emit(data, None if env.json else render(data))
    return ExitStatus.OK
