"""`tidewire dashboard [IFACE] [--listen 127.0.0.1:PORT]`: a local web page of a running node.

A process of its own that talks to the daemon's control socket (cli/dashboard_server.py),
so the node's memory and packet path are untouched. The first line of output is the
URL to open, with the login token in its fragment; it runs until interrupted.
"""

import argparse
import contextlib
from ipaddress import ip_address
from typing import Any

from .control_client import ClientError, add_socket_argument, call
from .env import Environment
from .exit_status import ExitStatus

DEFAULT_LISTEN = "127.0.0.1:0"  # port 0: any free port (the URL says which)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("dashboard", help="serve a local web page of a running node")
    p.add_argument("iface", metavar="IFACE", nargs="?", help="interface of the node")
    p.add_argument(
        "--listen",
        metavar="ADDRESS:PORT",
        default=DEFAULT_LISTEN,
        help="where the page is served (default 127.0.0.1 on a free port)",
    )
    add_socket_argument(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace, env: Environment) -> int:
    from tidewire.node.config.fields import parse_listen

    try:
        host, port = parse_listen(args.listen)
    except ValueError as exc:
        env.error(f"--listen: {exc}")
        return ExitStatus.USAGE
    try:
        call(args, {"cmd": "status"})  # the daemon answers before we offer a page of it
    except ClientError as exc:
        env.error(str(exc))
        return ExitStatus.ERROR
    if not ip_address(host).is_loopback:
        env.error(f"warning: --listen {host} is not loopback; anyone with the token can log in")
    import trio

    from . import dashboard_server

    token = dashboard_server.new_token()
    dashboard = dashboard_server.Dashboard(token=token, call=lambda msg: call(args, msg))

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            bound = await nursery.start(dashboard_server.serve, host, port, dashboard)
            where = f"[{host}]" if ":" in host else host
            url = f"http://{where}:{bound}/#token={token}"
            env.emit({"url": url, "listen": f"{where}:{bound}"}, url)
            env.stdout.flush()

    try:
        with contextlib.suppress(KeyboardInterrupt):
            trio.run(main)
    except OSError as exc:
        env.error(f"--listen: cannot listen on {args.listen} ({exc.strerror or exc})")
        return ExitStatus.ERROR
    return ExitStatus.OK
