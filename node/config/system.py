"""Checks of a loaded config against the machine it starts on: does the exit's outbound
interface exist, does every peer's endpoint (its first candidate path) resolve.

The readers stay pure (they read only the config and its key files); `tidewire up`
and a reload call `check_system` with the two questions as callables (this machine's
answers are `interface_exists` and `resolve`), so tests answer them without a network.
Errors are `ConfigError`s naming the file, the line and the field the loader recorded
in `where`. A resolved endpoint replaces the name in the spec, so
the daemon does not ask DNS a second time and cannot get another answer.

When hooks will run, the first word of each command must name something bash can run
(`command_exists`), so a missing PostUp command is an error naming its line before
anything changes (the daemon still reports bash's "command not found" for the rest).
"""

import shlex
import socket
from collections.abc import Callable
from pathlib import Path

from tidewire.protocol.types import RELAY

from . import ConfigError, NodeConfig, Where, format_path, parse_path

InterfaceExists = Callable[[str], bool]
Resolve = Callable[[str, int], tuple[str, int]]  # raises OSError or UnicodeError
CommandExists = Callable[[str], bool]
SHELL_SYNTAX = set("=$`()<>|&;{}[]*?~!\"'\\")  # a first word bash expands: not checked


def check_system(
    cfg: NodeConfig,
    *,
    exit_enabled: bool,
    interface_exists: InterfaceExists,
    resolve: Resolve,
    command_exists: CommandExists | None = None,
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
        if transport == RELAY:  # a key, not a host: nothing to resolve
            continue
        try:
            addr, port = resolve(host, port)
        except (OSError, UnicodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise ConfigError(cfg.path, line, field, f"cannot resolve {host} ({reason})") from None
        peer.endpoint = format_path(transport, addr, port)
    if command_exists is not None:
        check_hooks(cfg, command_exists)


def check_hooks(cfg: NodeConfig, command_exists: CommandExists) -> None:
    for hooks in cfg.service.hooks.values():
        for hook in hooks:
            try:
                words = shlex.split(hook.command.replace("%i", cfg.name))
            except ValueError as exc:
                raise ConfigError(
                    cfg.path, hook.line, hook.key, f"bash cannot parse it ({exc})"
                ) from None
            first = words[0] if words else ""
            if first and not SHELL_SYNTAX & set(first) and not command_exists(first):
                why = f"command not found: {first!r} (in `{hook.command}`)"
                raise ConfigError(cfg.path, hook.line, hook.key, why)


def interface_exists(name: str) -> bool:
    """The machine's answer for `check_system` (the loader checked `name` is a plain name)."""
    return Path("/sys/class/net", name).exists()


def command_exists(word: str) -> bool:
    """The machine's answer for `check_system`: whether bash can run `word` (a builtin,
    a keyword or a program on PATH). Blocking."""
    import subprocess

    try:
        found = subprocess.run(
            ["bash", "-c", 'type -t -- "$1"', "bash", word], capture_output=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return True  # no bash to ask: the daemon says what fails when it runs the hook
    return found.returncode == 0


def resolvable(host: str) -> bytes | str:
    """A host for getaddrinfo: an ASCII name as bytes, since a str loads Python's idna
    codec (stringprep, unicodedata: 0.3 MB) into the node for good, even for an address."""
    return host.encode() if host.isascii() else host


def resolve(host: str, port: int) -> tuple[str, int]:
    """The machine's answer for `check_system`: the first address DNS gives (blocking)."""
    infos = socket.getaddrinfo(resolvable(host), port, type=socket.SOCK_DGRAM)
    _family, _, _, _, sockaddr = infos[0]
    return str(sockaddr[0]), int(sockaddr[1])


def _where(where: dict[str, Where], key: str, default: str) -> Where:
    return where.get(key, (None, default))
