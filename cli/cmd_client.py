"""`tidewire client add|list|remove IFACE ...`: stock WireGuard clients (phones, laptops).

`add` makes a key pair in memory, picks the client's addresses (the next free /32 and
/128 of the node's tunnel subnets, cli/client_profile.py), adds the peer in WireGuard
mode to the running node, appends it to the node's config file under a comment naming
the client (node/config/edit.py), and prints the client's wg-quick config and its QR
code. The private key goes only to stdout and to `--png FILE`: never to the node's
disk. The config file is the one `tidewire up IFACE` finds, or `--config FILE`; the
node is reached at the control socket that file names, or `--socket`.

The running node is changed first, since it refuses what would clash (an address
another peer holds); if the file cannot be written, the peer is taken out again.
"""

import argparse
import os
from pathlib import Path
from typing import Any

from tidewire.node.config import ConfigError, NodeConfig, load, parse_endpoint
from tidewire.node.config.edit import (
    EditError,
    add_client,
    find_clients,
    remove_client,
    replace_file,
)
from tidewire.node.config.locate import find_config
from tidewire.protocol.keys import derive_public, encode_key, private_from_seed

from . import client_profile, qr
from .control_client import ClientError, add_socket_argument, call
from .env import Environment
from .exit_status import ExitStatus
from .private_file import write_private


def add_parser(sub: Any) -> None:
    p = sub.add_parser("client", help="add, list or remove stock WireGuard clients of a node")
    csub = p.add_subparsers(dest="client_command", metavar="add|list|remove", required=True)
    add = csub.add_parser(
        "add", help="make a client: its config and QR code, for the WireGuard apps"
    )
    add.add_argument("iface", metavar="IFACE")
    add.add_argument("name", metavar="NAME", help="the client's name, kept in the config file")
    add.add_argument(
        "--allowed-ips",
        metavar="CIDR[,CIDR...]",
        help="the client's tunnel addresses (default: the next free /32 and /128)",
    )
    add.add_argument("--dns", metavar="IP[,IP...]", help="DNS servers for the client")
    add.add_argument(
        "--endpoint",
        metavar="HOST:PORT",
        help="this node as the client reaches it (default: [client] endpoint of the config)",
    )
    add.add_argument("--png", metavar="FILE", help="also write the QR code to FILE (mode 0600)")
    add.add_argument("--no-qr", action="store_true", help="print the config only")
    _common(add)
    add.set_defaults(run=_add)
    ls = csub.add_parser("list", help="list the clients in the config file")
    ls.add_argument("iface", metavar="IFACE")
    _common(ls)
    ls.set_defaults(run=_list)
    rm = csub.add_parser("remove", help="remove a client from the running node and the file")
    rm.add_argument("iface", metavar="IFACE")
    rm.add_argument("name", metavar="NAME")
    _common(rm)
    rm.set_defaults(run=_remove)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", metavar="FILE", help="the node's config file (default: as `up IFACE` finds it)"
    )
    add_socket_argument(p)


class _Refused(Exception):
    """One sentence for stderr."""


def _open(args: argparse.Namespace, env: Environment) -> tuple[Path, bytes, NodeConfig]:
    try:
        path = Path(args.config) if args.config else find_config(args.iface, env.config_dirs)
        raw = path.read_bytes()
        cfg = load(path)
    except ConfigError as exc:
        raise _Refused(str(exc)) from None
    except OSError as exc:
        raise _Refused(f"cannot read {args.config or args.iface}: {exc.strerror}") from None
    if not args.socket:
        args.socket = str(cfg.control_socket)
    return path, raw, cfg


def _check(path: Path, text: str, fmt: str, peers: int) -> None:
    """The edited text must load, with `peers` peers (else the edit is refused)."""
    from tidewire.node.config.toml import load_toml
    from tidewire.node.config.wg_quick import load_wg

    try:
        cfg = (load_toml if fmt == "toml" else load_wg)(path, text)
    except ConfigError as exc:
        raise _Refused(f"the edited {path} would not load ({exc}); edit it by hand") from None
    if len(cfg.peers) != peers:
        raise _Refused(f"{path} does not read as expected after the edit; edit it by hand")


def _split(text: str | None) -> list[str]:
    return [s.strip() for s in (text or "").split(",") if s.strip()]


def _run(fn: Any, args: argparse.Namespace, env: Environment) -> int:
    try:
        return int(fn(args, env))
    except (_Refused, ClientError, EditError, client_profile.NoFreeAddress) as exc:
        env.error(str(exc))
        return ExitStatus.ERROR


def _add(args: argparse.Namespace, env: Environment) -> int:
    return _run(_add_client, args, env)


def _list(args: argparse.Namespace, env: Environment) -> int:
    return _run(_list_clients, args, env)


def _remove(args: argparse.Namespace, env: Environment) -> int:
    return _run(_remove_client, args, env)


def _add_client(args: argparse.Namespace, env: Environment) -> int:
    path, raw, cfg = _open(args, env)
    endpoint = args.endpoint or cfg.client.endpoint
    if not endpoint:
        raise _Refused(
            "give --endpoint HOST:PORT (this node's public address as clients reach it),"
            f' or set endpoint = "host:port" in a [client] table of {path}'
        )
    try:
        parse_endpoint(endpoint)
    except ValueError as exc:
        raise _Refused(f"--endpoint: {exc}") from None
    status = call(args, {"cmd": "status"})["status"]
    if args.allowed_ips:
        addresses = _split(args.allowed_ips)
    elif cfg.addresses:
        taken = [str(n) for p in cfg.peers for n in p.allowed_ips]
        taken += [ip for p in status["peers"] for ip in p["allowed_ips"]]
        addresses = client_profile.next_free([str(a) for a in cfg.addresses], taken)
    else:
        raise _Refused(f"{path} gives the node no address; give the client's with --allowed-ips")
    private = private_from_seed(os.urandom(32))
    public = encode_key(derive_public(private))
    text = add_client(
        raw.decode(),
        cfg.format,
        path=path,
        name=args.name,
        public_key=public,
        allowed_ips=addresses,
    )
    _check(path, text, cfg.format, len(cfg.peers) + 1)
    call(
        args,
        {
            "cmd": "peer_add",
            "public_key": public,
            "allowed_ips": addresses,
            "mode": "wireguard",
            "endpoint": None,
            "persistent_keepalive": 0,
        },
    )
    try:
        replace_file(path, raw, text)
    except (EditError, OSError) as exc:
        call(args, {"cmd": "peer_remove", "public_key": public})
        why = exc if isinstance(exc, EditError) else f"cannot write {path}: {exc.strerror}"
        raise _Refused(f"{why} (the client was not added)") from None
    conf = client_profile.client_config(
        private_key=encode_key(private),
        addresses=addresses,
        dns=_split(args.dns) if args.dns else cfg.client.dns,
        server_public_key=status["public_key"],
        endpoint=endpoint,
        name=args.name,
    )
    if args.png:
        problem = write_private(args.png, qr.png(conf))
        if problem:
            env.error(f"{problem} (the client was added; its config is below)")
    if env.json:  # the config as text, no QR code in a terminal's characters
        env.emit(
            {"name": args.name, "public_key": public, "allowed_ips": addresses, "config": conf}
        )
    else:
        print(conf, end="", file=env.stdout)
    if not args.no_qr and not env.json:
        print("\n" + qr.terminal(conf), end="", file=env.stdout)
    if not (args.dns or cfg.client.dns):
        env.error("note: no DNS for the client (--dns, or dns in [client]): it keeps its own")
    return ExitStatus.OK


def _list_clients(args: argparse.Namespace, env: Environment) -> int:
    path, raw, cfg = _open(args, env)
    entries = find_clients(raw.decode(), cfg.format, path=path)
    try:
        peers = {p["public_key"]: p for p in call(args, {"cmd": "status"})["status"]["peers"]}
    except ClientError as exc:
        env.error(f"{exc}; handshakes unknown")
        peers = {}
    rows = [
        {
            "name": e.name,
            "public_key": e.public_key,
            "allowed_ips": list(e.allowed_ips),
            "running": e.public_key in peers,
            "latest_handshake": peers.get(e.public_key, {}).get("latest_handshake"),
        }
        for e in entries
    ]
    if env.json:
        env.emit(rows)
        return ExitStatus.OK
    from .cmd_status import _ago

    for r in rows:
        seen = _ago(r["latest_handshake"]) if r["running"] else "not in the running node"
        ips = ", ".join(r["allowed_ips"])
        print(f"{r['name']}  {r['public_key']}  {ips}  handshake: {seen}", file=env.stdout)
    return ExitStatus.OK


def _remove_client(args: argparse.Namespace, env: Environment) -> int:
    path, raw, cfg = _open(args, env)
    text, entry = remove_client(raw.decode(), cfg.format, path=path, name=args.name)
    _check(path, text, cfg.format, len(cfg.peers) - 1)
    try:
        call(args, {"cmd": "peer_remove", "public_key": entry.public_key})
    except ClientError as exc:
        if "no peer with that public key" not in str(exc):
            raise
        env.error(f"note: {args.name} was not in the running node; removing it from {path}")
    try:
        replace_file(path, raw, text)
    except (EditError, OSError) as exc:
        why = exc if isinstance(exc, EditError) else f"cannot write {path}: {exc.strerror}"
        raise _Refused(f"{why}: {args.name} left the running node but is still in it") from None
    env.emit({"removed": args.name, "public_key": entry.public_key, "config": str(path)})
    return ExitStatus.OK
