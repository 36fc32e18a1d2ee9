"""Field checks shared by both config readers; each reports through an `Err` callback
that knows the file, the line and the key."""

import os
import re
from collections.abc import Callable
from ipaddress import ip_address, ip_interface, ip_network
from pathlib import Path
from typing import Any, NoReturn

from tidewire.protocol.errors import LocalProtocolError, RemoteProtocolError
from tidewire.protocol.keys import decode_key
from tidewire.protocol.link.crypto import dh
from tidewire.protocol.link.profile import Mode
from tidewire.protocol.types import RELAY, UDP

from . import (
    WILDCARDS,
    ConfigError,
    Interface,
    Network,
    NodeConfig,
    format_path,
    ifname_problem,
    parse_endpoint,
    parse_path,
)

# sun_path of a Unix socket address is 108 bytes with the terminating NUL (unix(7))
MAX_SOCKET_PATH = 107

Err = Callable[[str, str], NoReturn]


def key(value: Any, err: Err, name: str) -> bytes:
    if not isinstance(value, str):
        err(name, "must be a base64 key string")
    try:
        return decode_key(value, field=name)
    except LocalProtocolError as exc:
        err(name, str(exc).split(": ", 1)[1])


def peer_key(value: Any, err: Err, name: str, own_private: bytes, own_public: bytes) -> bytes:
    """A peer's public key: not the node's own, and not a low-order point.

    A low-order (small-subgroup) point makes X25519 give all zeros with any private
    key (RFC 7748 section 6.1; the list is in Bernstein's "Curve25519: new
    Diffie-Hellman speed records", cr.yp.to/ecdh.html), so testing the node's own
    shared secret finds every such key without a list.
    """
    public = key(value, err, name)
    if public == own_public:
        err(name, "is this node's own public key (the peer's key is needed here)")
    try:
        dh(own_private, public)
    except RemoteProtocolError:
        err(name, "is a low-order point that no real key has (X25519 gives all zeros)")
    return public


def key_file(value: Any, err: Err, name: str, base: Path) -> bytes:
    path = Path(file_path(value, err, name))
    path = path if path.is_absolute() else base / path
    try:
        text = path.read_bytes().decode()
    except OSError as exc:
        err(name, f"{path} cannot be read ({exc.strerror})")
    except UnicodeDecodeError:
        err(name, f"{path} is not a base64 key (it is not even text)")
    return key(text, err, name)


def file_path(value: Any, err: Err, name: str) -> str:
    if not isinstance(value, str) or not value:
        err(name, "must be a file path")
    if "\0" in value:
        err(name, "a path cannot hold a NUL character")
    return value


def socket_path(value: Any, err: Err, name: str) -> Path:
    text = file_path(value, err, name)
    path = Path(text)
    if text.endswith("/") or path.name in ("", ".", ".."):
        err(name, f"{text!r} names a directory, not a socket file")
    try:
        size = len(os.fsencode(text))
    except UnicodeError:
        err(name, "must be a file path")
    if size > MAX_SOCKET_PATH:
        err(name, f"is {size} bytes long; a Unix socket path holds at most {MAX_SOCKET_PATH}")
    return path


def interface_name(value: Any, err: Err, name: str) -> str:
    problem = ifname_problem(value)
    if problem:
        err(name, f"{problem} (got {value!r})")
    return str(value)


def integer(value: Any, err: Err, name: str, lo: int, hi: int) -> int:
    if isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.isdigit()) or len(text) > 20:
            err(name, f"must be an integer from {lo} to {hi}")
        value = int(text)
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
    if "://" in value:
        err(name, f"{value!r}: endpoint is one HOST:PORT on udp; put URLs in endpoints = [...]")
    try:
        parse_endpoint(value)
    except ValueError as exc:
        err(name, str(exc))
    return value.strip()


DOMAIN = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9_-]{1,63}(?<!-))*\.?")


def dns_entries(values: list[str], err: Err, name: str) -> tuple[list[str], list[str]]:
    """wg-quick's DNS list: IP addresses are servers, anything else a search domain."""
    servers: list[str] = []
    search: list[str] = []
    for v in (v.strip() for v in values):
        try:
            servers.append(str(ip_address(v)))
            continue
        except ValueError:
            pass
        if not DOMAIN.fullmatch(v) or len(v.rstrip(".")) > 253 or v.replace(".", "").isdigit():
            err(name, f"{v!r} is neither an IP address nor a search domain (like example.com)")
        search.append(v)
    if search and not servers:
        err(name, "lists search domains but no server address")
    return servers, search


def upstreams(values: list[str], err: Err, name: str) -> list[tuple[str, int]]:
    """Resolver addresses, "ADDR" or "ADDR:PORT" ("[V6]:PORT")."""
    out = []
    for v in (v.strip() for v in values):
        try:
            out.append((str(ip_address(v)), 53))
            continue
        except ValueError:
            pass
        try:
            host, port = parse_endpoint(v)
            out.append((str(ip_address(host)), port))
        except ValueError:
            err(name, f"{v!r} is not a resolver address (like 9.9.9.9 or [2620:fe::fe]:53)")
    return out


def endpoints(values: list[str], err: Err, name: str, mode: Mode) -> list[str]:
    """An ordered list of candidate paths ("masked://host:port", "udp://host:port" or a
    bare "host:port"), in canonical text; a wireguard-mode peer may only have udp://."""
    if not values:
        err(name, "must list at least one endpoint")
    out = []
    for v in values:
        try:
            transport, host, port = parse_path(v)
        except ValueError as exc:
            err(name, str(exc))
        if transport != UDP and mode is Mode.WIREGUARD:
            err(name, f"{v.strip()!r}: a wireguard-mode peer can only use udp:// (stock"
                " WireGuard knows no skins)")
        out.append(format_path(transport, host, port))
    return out


def listen(values: list[str], err: Err, name: str) -> dict[str, int]:
    """The listeners: at most one URL per scheme (udp, masked, tcp, tls) on a wildcard
    address, each with its port; transport name -> port."""
    out: dict[str, int] = {}
    for v in values:
        if "://" not in v:
            err(name, f"{v.strip()!r} needs a scheme (udp://0.0.0.0:PORT or masked://...)")
        try:
            transport, host, port = parse_path(v)
        except ValueError as exc:
            err(name, str(exc))
        if transport == RELAY:
            err(name, f"{v.strip()!r}: relay:// is a peer's endpoint, not a listener")
        if host not in WILDCARDS:
            err(name, f"{v.strip()!r}: only 0.0.0.0 or [::] (the node listens on both"
                " address families)")
        if transport in out:
            err(name, f"{v.strip()!r}: a second {transport}:// listener (at most one each)")
        out[transport] = port
    return out


def split(value: str) -> list[str]:
    return [v for v in (s.strip() for s in value.split(",")) if v]


def check_peers(cfg: NodeConfig) -> None:
    seen: set[bytes] = set()
    for peer in cfg.peers:
        if peer.public_key in seen:
            raise ConfigError(cfg.path, peer.line, "public key", "this peer appears twice")
        seen.add(peer.public_key)


def parse_listen(value: str) -> tuple[str, int]:
    """An IP literal and a port, "127.0.0.1:9586" or "[::1]:9586" (no host names: what to
    bind must not depend on a resolver); port 0 asks the kernel for a free one."""
    host, sep, port = value.strip().rpartition(":")
    if not sep or not host:
        raise ValueError(f'{value!r} is not ADDRESS:PORT (like "127.0.0.1:9586")')
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{value!r}: write an IPv6 address in brackets, like [::1]:9586")
    try:
        address = ip_address(host)
    except ValueError:
        raise ValueError(f"{host!r} is not an IP address") from None
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{port!r} is not a port from 0 to 65535")
    return str(address), int(port)


def listen_address(value: Any, err: Err, name: str) -> tuple[str, int]:
    if not isinstance(value, str):
        err(name, 'must be an address and port in quotes, like "127.0.0.1:9586"')
    try:
        return parse_listen(value)
    except ValueError as exc:
        err(name, str(exc))
