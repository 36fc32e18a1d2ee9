"""Field checks shared by both config readers; each reports through an `Err` callback
that knows the file, the line and the key."""

from collections.abc import Callable
from ipaddress import ip_interface, ip_network
from pathlib import Path
from typing import Any, NoReturn

from tidewire.protocol.errors import LocalProtocolError
from tidewire.protocol.keys import decode_key

from . import ConfigError, Interface, Network, NodeConfig, parse_endpoint

Err = Callable[[str, str], NoReturn]


def key(value: Any, err: Err, name: str) -> bytes:
    if not isinstance(value, str):
        err(name, "must be a base64 key string")
    try:
        return decode_key(value, field=name)
    except LocalProtocolError as exc:
        err(name, str(exc).split(": ", 1)[1])


def key_file(value: Any, err: Err, name: str, base: Path) -> bytes:
    if not isinstance(value, str):
        err(name, "must be a file path")
    path = Path(value) if Path(value).is_absolute() else base / value
    try:
        text = path.read_text()
    except OSError as exc:
        err(name, f"{path} cannot be read ({exc.strerror})")
    return key(text, err, name)


def integer(value: Any, err: Err, name: str, lo: int, hi: int) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        err(name, f"must be an integer from {lo} to {hi}")
    return int(value)


def networks(values: list[str], err: Err, name: str) -> list[Network]:
    out = []
    for v in values:
        try:
            out.append(ip_network(v.strip(), strict=False))
        except ValueError:
            err(name, f"{v.strip()!r} is not an IP prefix (like 10.0.0.2/32 or fd00::/64)")
    return out


def interfaces(values: list[str], err: Err, name: str) -> list[Interface]:
    out = []
    for v in values:
        try:
            out.append(ip_interface(v.strip()))
        except ValueError:
            err(name, f"{v.strip()!r} is not an address with prefix (like 10.0.0.1/24)")
    return out


def endpoint(value: Any, err: Err, name: str) -> str:
    if not isinstance(value, str):
        err(name, "must be HOST:PORT")
    try:
        parse_endpoint(value)
    except ValueError as exc:
        err(name, str(exc))
    return value.strip()


def split(value: str) -> list[str]:
    return [v for v in (s.strip() for s in value.split(",")) if v]


def check_peers(cfg: NodeConfig) -> None:
    seen: set[bytes] = set()
    for peer in cfg.peers:
        if peer.public_key in seen:
            raise ConfigError(cfg.path, peer.line, "public key", "this peer appears twice")
        seen.add(peer.public_key)
