"""Checks of a loaded config against the machine it starts on: does the exit's outbound
interface exist, does every peer's endpoint (its first candidate path) resolve.

The readers stay pure (they read only the config and its key files); `tidewire up`
and a reload call `check_system` with the two questions as callables (this machine's
answers are `interface_exists` and `resolve`), so tests answer them without a network.
Errors are `ConfigError`s naming the file, the line and the field the loader recorded
in `where`. A resolved endpoint replaces the name in the spec, so
the daemon does not ask DNS a second time and cannot get another answer.
"""

import socket
from collections.abc import Callable
from pathlib import Path

from . import ConfigError, NodeConfig, Where, format_path, parse_path

InterfaceExists = Callable[[str], bool]
Resolve = Callable[[str, int], tuple[str, int]]  # raises OSError or UnicodeError


def check_system(
    cfg: NodeConfig, *, exit_enabled: bool, interface_exists: InterfaceExists, resolve: Resolve
) -> None:
    name = cfg.exit.outbound_interface
    if exit_enabled and name is not None and not interface_exists(name):
        line, field = _where(cfg.exit.where, "outbound_interface", "[exit] outbound_interface")
        raise ConfigError(cfg.path, line, field, f"there is no network interface {name!r}")
    for i, peer in enumerate(cfg.peers):
        if peer.endpoint is None:
            continue
        line, field = _where(peer.where, "endpoint", f"peer #{i + 1} endpoint")
        try:
            transport, host, port = parse_path(peer.endpoint)
        except ValueError as exc:  # the loaders check this; a spec built by hand may not
            raise ConfigError(cfg.path, line, field, str(exc)) from None
        try:
            addr, port = resolve(host, port)
        except (OSError, UnicodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise ConfigError(cfg.path, line, field, f"cannot resolve {host} ({reason})") from None
        peer.endpoint = format_path(transport, addr, port)


def interface_exists(name: str) -> bool:
    """The machine's answer for `check_system` (the loader checked `name` is a plain name)."""
    return Path("/sys/class/net", name).exists()


def resolve(host: str, port: int) -> tuple[str, int]:
    """The machine's answer for `check_system`: the first address DNS gives (blocking)."""
    _family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    return str(sockaddr[0]), int(sockaddr[1])


def _where(where: dict[str, Where], key: str, default: str) -> Where:
    return where.get(key, (None, default))
