"""[tls]: the tls:// listener's certificate, key and fallback web server.

    [tls]
    certificate = "/etc/tidewire/tls.crt"   # with key; both absent: self-signed on first start
    key = "/etc/tidewire/tls.key"
    fallback = "127.0.0.1:8080"             # absent: a built-in static page

Relative paths are relative to the config file. The files must be readable now, so a
typo is a config error with its line, not a failed start.
"""

from pathlib import Path
from typing import Any

from tidewire.protocol.skins.stream_ends import MAX_INNER
from tidewire.protocol.types import TCP, TLS

from . import NodeConfig, TlsSpec
from .fields import Err, file_path, parse_listen


def tls_table(table: Any, err: Err, base: Path) -> TlsSpec:
    if not isinstance(table, dict):
        err("tls", "must be a table")
    for k in table:
        if k not in ("certificate", "key", "fallback"):
            err(k, "unknown key (known: certificate, fallback, key)")
    spec = TlsSpec()
    if ("certificate" in table) != ("key" in table):
        err("certificate", "set both certificate and key, or neither (a self-signed one)")
    for name in ("certificate", "key"):
        if name in table:
            path = Path(file_path(table[name], err, name))
            path = path if path.is_absolute() else base / path
            try:
                path.read_bytes()
            except OSError as exc:
                err(name, f"{path} cannot be read ({exc.strerror})")
            setattr(spec, name, path)
    if "fallback" in table:
        value = table["fallback"]
        if not isinstance(value, str):
            err("fallback", 'must be an upstream web server in quotes, like "127.0.0.1:8080"')
        try:
            spec.fallback = parse_listen(value)
        except ValueError as exc:
            err("fallback", str(exc))
        if spec.fallback[1] == 0:
            err("fallback", "needs a port from 1 to 65535")
    return spec


def check_stream_mtu(cfg: NodeConfig, err: Err) -> None:
    """A node that may carry its link on tcp or tls keeps its MTU within one frame."""
    urls = [u for p in cfg.peers for u in (p.endpoint or "", *p.fallbacks)]
    streams = cfg.tcp_port is not None or cfg.tls_port is not None or any(
        u.startswith((f"{TCP}://", f"{TLS}://")) for u in urls
    )
    if streams and cfg.mtu > MAX_INNER:
        err("mtu", f"{cfg.mtu} is more than the tcp and tls skins carry (at most {MAX_INNER})")
