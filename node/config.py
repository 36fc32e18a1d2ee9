"""Node configuration: a tidewire TOML file or a WireGuard file exactly as wg-quick reads it.

The two are told apart by content: a file with an `[Interface]` or `[Peer]`
section header is WireGuard's format. Both produce one `NodeConfig`. Every error
is a `ConfigError` naming the file, the line and the key, in one sentence.
"""

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import (
    IPv4Interface,
    IPv4Network,
    IPv6Interface,
    IPv6Network,
    ip_interface,
    ip_network,
)
from pathlib import Path
from typing import Any, NoReturn

from tidewire.node.core.accounting import AccountingConfig
from tidewire.node.core.exit_policy import Rule, parse_rule
from tidewire.protocol.errors import LocalProtocolError
from tidewire.protocol.keys import decode_key
from tidewire.protocol.profile import Mode

Network = IPv4Network | IPv6Network
Interface = IPv4Interface | IPv6Interface

IFNAME = re.compile(r"^[A-Za-z0-9_=+.-]{1,15}$")
WG_SECTION = re.compile(r"^\s*\[\s*(interface|peer)\s*\]\s*(#.*)?$", re.IGNORECASE | re.MULTILINE)
TOML_HINT = re.compile(r'^\s*\[\[|^\s*\w+\s*=\s*"', re.MULTILINE)  # [[tables]], "strings"
WG_IGNORED = {"dns", "table", "preup", "postup", "predown", "postdown", "saveconfig", "fwmark"}


class ConfigError(Exception):
    def __init__(self, path: Path | str, line: int | None, key: str, message: str) -> None:
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {key}: {message}")
        self.path, self.line, self.key = path, line, key


@dataclass
class PeerSpec:
    public_key: bytes
    preshared_key: bytes | None = None
    endpoint: str | None = None
    allowed_ips: list[Network] = field(default_factory=list)
    persistent_keepalive: int = 0
    mode: Mode = Mode.NATIVE
    provider: bool = False
    line: int = 0


@dataclass
class ExitSpec:
    enabled: bool = False
    outbound_interface: str | None = None
    allow: list[Rule] = field(default_factory=list)
    deny: list[Rule] = field(default_factory=list)


@dataclass
class NodeConfig:
    path: Path
    name: str
    private_key: bytes
    listen_port: int | None = None
    addresses: list[Interface] = field(default_factory=list)
    mtu: int = 1420
    state_dir: Path = Path("/var/lib/tidewire")
    control_socket: Path | None = None
    peers: list[PeerSpec] = field(default_factory=list)
    exit: ExitSpec = field(default_factory=ExitSpec)
    warnings: list[str] = field(default_factory=list)
    format: str = "toml"
    accounting: AccountingConfig = field(default_factory=AccountingConfig)
    epoch_seconds: int = 86400

    def __post_init__(self) -> None:
        if self.control_socket is None:
            self.control_socket = Path("/run/tidewire") / f"{self.name}.sock"


def load(path: str | Path) -> NodeConfig:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(p, None, "file", f"cannot be read ({exc.strerror})") from None
    # A WireGuard file is not valid TOML (its values are unquoted); a TOML file may
    # still look like one to a loose eye, so TOML is tried first.
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        if WG_SECTION.search(text) and not TOML_HINT.search(text):
            return _load_wg(p, text)
    return _load_toml(p, text)


def default_name(path: Path) -> str:
    name = path.name.removesuffix(".conf").removesuffix(".toml")
    return name


def parse_endpoint(text: str) -> tuple[str, int]:
    """Split "host:port", "[v6]:port" or "v4:port"; raise ValueError if malformed."""
    m = re.fullmatch(r"\[([^\]]+)\]:(\d+)|([^:\[\]]+):(\d+)", text.strip())
    if not m:
        raise ValueError(f"{text!r} is not HOST:PORT (IPv6 as [ADDR]:PORT)")
    host = m.group(1) or m.group(3)
    port = int(m.group(2) or m.group(4))
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is not in 1-65535")
    return host, port


# -- shared validation -----------------------------------------------------

Err = Callable[[str, str], NoReturn]


def _key(value: Any, err: Err, key: str) -> bytes:
    if not isinstance(value, str):
        err(key, "must be a base64 key string")
    try:
        return decode_key(value, field=key)
    except LocalProtocolError as exc:
        err(key, str(exc).split(": ", 1)[1])


def _key_file(value: Any, err: Err, key: str, base: Path) -> bytes:
    if not isinstance(value, str):
        err(key, "must be a file path")
    path = Path(value) if Path(value).is_absolute() else base / value
    try:
        text = path.read_text()
    except OSError as exc:
        err(key, f"{path} cannot be read ({exc.strerror})")
    return _key(text, err, key)


def _int(value: Any, err: Err, key: str, lo: int, hi: int) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        err(key, f"must be an integer from {lo} to {hi}")
    return int(value)


def _networks(values: list[str], err: Err, key: str) -> list[Network]:
    out = []
    for v in values:
        try:
            out.append(ip_network(v.strip(), strict=False))
        except ValueError:
            err(key, f"{v.strip()!r} is not an IP prefix (like 10.0.0.2/32 or fd00::/64)")
    return out


def _interfaces(values: list[str], err: Err, key: str) -> list[Interface]:
    out = []
    for v in values:
        try:
            out.append(ip_interface(v.strip()))
        except ValueError:
            err(key, f"{v.strip()!r} is not an address with prefix (like 10.0.0.1/24)")
    return out


def _endpoint(value: Any, err: Err, key: str) -> str:
    if not isinstance(value, str):
        err(key, "must be HOST:PORT")
    try:
        parse_endpoint(value)
    except ValueError as exc:
        err(key, str(exc))
    return value.strip()


def _split(value: str) -> list[str]:
    return [v for v in (s.strip() for s in value.split(",")) if v]


# -- WireGuard format ------------------------------------------------------

Section = tuple[
    str, int, dict[str, tuple[str, int, str]]
]  # name, line, key -> (value, line, spelling)


def _wg_sections(path: Path, text: str) -> list[Section]:
    sections: list[Section] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"\[\s*(\w+)\s*\]", line)
        if m:
            name = m.group(1).lower()
            if name not in ("interface", "peer"):
                raise ConfigError(
                    path, n, f"[{m.group(1)}]", "unknown section; expected [Interface] or [Peer]"
                )
            sections.append((name, n, {}))
            continue
        if "=" not in line:
            raise ConfigError(path, n, line, "expected KEY = VALUE")
        k, v = (part.strip() for part in line.split("=", 1))
        if not sections:
            raise ConfigError(path, n, k, "is set before any [Interface] or [Peer] section")
        entries = sections[-1][2]
        lk = k.lower()
        if lk in entries and lk in ("address", "allowedips", "dns"):
            entries[lk] = (entries[lk][0] + "," + v, entries[lk][1], k)
        else:
            entries[lk] = (v, n, k)
    return sections


def _wg_err(path: Path, section: Section, title: str, lines: list[str]) -> Err:
    def err(key: str, message: str) -> NoReturn:
        line = section[2].get(key.lower(), ("", section[1], ""))[1]
        # a repeated key (AllowedIPs twice): point at the line holding the quoted bad value
        quoted = re.search(r"'([^']+)'", message)
        if quoted:
            for n in range(line, min(len(lines), line + 200) + 1):
                raw = lines[n - 1]
                if raw.split("=", 1)[0].strip().lower() == key.lower() and quoted.group(1) in raw:
                    line = n
                    break
        raise ConfigError(path, line, f"[{title}] {key}", message)

    return err


def _load_wg(path: Path, text: str) -> NodeConfig:
    sections = _wg_sections(path, text)
    ifaces = [s for s in sections if s[0] == "interface"]
    if len(ifaces) != 1:
        line = ifaces[1][1] if len(ifaces) > 1 else None
        raise ConfigError(path, line, "[Interface]", "exactly one [Interface] section is required")
    iface = ifaces[0]
    lines = text.splitlines()
    entries, err = iface[2], _wg_err(path, iface, "Interface", lines)
    warnings: list[str] = []
    for lk, (_, n, k) in entries.items():
        if lk in WG_IGNORED:
            warnings.append(f"{path}:{n}: [Interface] {k} is a wg-quick setting tidewire ignores")
        elif lk not in ("privatekey", "listenport", "address", "mtu"):
            raise ConfigError(path, n, f"[Interface] {k}", "unknown key")
    if "privatekey" not in entries:
        err("PrivateKey", "is required")
    cfg = NodeConfig(
        path=path,
        name=default_name(path),
        private_key=_key(entries["privatekey"][0], err, "PrivateKey"),
        format="wg-quick",
        warnings=warnings,
    )
    if "listenport" in entries:
        cfg.listen_port = _int(entries["listenport"][0], err, "ListenPort", 0, 65535)
    if "address" in entries:
        cfg.addresses = _interfaces(_split(entries["address"][0]), err, "Address")
    if "mtu" in entries:
        cfg.mtu = _int(entries["mtu"][0], err, "MTU", 576, 65535)
    for section in sections:
        if section[0] == "peer":
            cfg.peers.append(_wg_peer(path, section, lines))
    _check_peers(cfg)
    return cfg


def _wg_peer(path: Path, section: Section, lines: list[str]) -> PeerSpec:
    entries, err = section[2], _wg_err(path, section, "Peer", lines)
    known = ("publickey", "presharedkey", "endpoint", "allowedips", "persistentkeepalive")
    for lk, (_, n, k) in entries.items():
        if lk not in known:
            raise ConfigError(path, n, f"[Peer] {k}", "unknown key")
    if "publickey" not in entries:
        err("PublicKey", "is required")
    peer = PeerSpec(
        public_key=_key(entries["publickey"][0], err, "PublicKey"),
        mode=Mode.WIREGUARD,
        line=section[1],
    )
    if "presharedkey" in entries:
        peer.preshared_key = _key(entries["presharedkey"][0], err, "PresharedKey")
    if "endpoint" in entries:
        peer.endpoint = _endpoint(entries["endpoint"][0], err, "Endpoint")
    if "allowedips" in entries:
        peer.allowed_ips = _networks(_split(entries["allowedips"][0]), err, "AllowedIPs")
    if "persistentkeepalive" in entries:
        v = entries["persistentkeepalive"][0]
        if v.lower() != "off":
            peer.persistent_keepalive = _int(v, err, "PersistentKeepalive", 0, 65535)
    return peer


def _check_peers(cfg: NodeConfig) -> None:
    seen: set[bytes] = set()
    for peer in cfg.peers:
        if peer.public_key in seen:
            raise ConfigError(cfg.path, peer.line, "public key", "this peer appears twice")
        seen.add(peer.public_key)


# -- TOML format -----------------------------------------------------------


def _toml_line(text: str, table: str, index: int, key: str | None) -> int | None:
    """The line of `key` in the `index`-th `[table]`/`[[table]]` (tomllib keeps no positions)."""
    lines = text.splitlines()
    header = re.compile(r"^\s*\[\[?\s*" + re.escape(table) + r"\s*\]\]?\s*(#.*)?$")
    any_header = re.compile(r"^\s*\[")
    count, start = -1, None
    for n, line in enumerate(lines, 1):
        if header.match(line):
            count += 1
            if count == index:
                start = n
                break
    if start is None:
        return None
    if key is None:
        return start
    keyline = re.compile(r"^\s*" + re.escape(key) + r"\s*=")
    for n in range(start + 1, len(lines) + 1):
        if any_header.match(lines[n - 1]):
            break
        if keyline.match(lines[n - 1]):
            return n
    return start


def _toml_err(path: Path, text: str, table: str, index: int) -> Err:
    label = f"[{table}]" if table != "peer" else f"[[peer]] #{index + 1}"

    def err(key: str, message: str) -> NoReturn:
        raise ConfigError(path, _toml_line(text, table, index, key), f"{label} {key}", message)

    return err


def _str_list(value: Any, err: Err, key: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        err(key, "must be a list of strings")
    return list(value)


def _bool(value: Any, err: Err, key: str) -> bool:
    if not isinstance(value, bool):
        err(key, "must be true or false")
    return value


def _unknown(table: dict[str, Any], known: set[str], err: Err) -> None:
    for k in table:
        if k not in known:
            err(k, f"unknown key (known: {', '.join(sorted(known))})")


def _load_toml(path: Path, text: str) -> NodeConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise ConfigError(path, int(m.group(1)) if m else None, "TOML", str(exc)) from None
    top_err = _toml_err(path, text, "interface", 0)
    for k in data:
        if k not in ("interface", "peer", "exit", "accounting"):
            raise ConfigError(
                path, None, k, "unknown table (known: [interface], [[peer]], [exit], [accounting])"
            )
    iface = data.get("interface")
    if not isinstance(iface, dict):
        raise ConfigError(path, None, "[interface]", "is required")
    err = top_err
    known = {
        "name",
        "private_key",
        "private_key_file",
        "listen_port",
        "address",
        "mtu",
        "state_dir",
        "control_socket",
    }
    _unknown(iface, known, err)
    if ("private_key" in iface) == ("private_key_file" in iface):
        err("private_key", "set exactly one of private_key and private_key_file")
    key = (
        _key(iface["private_key"], err, "private_key")
        if "private_key" in iface
        else _key_file(iface["private_key_file"], err, "private_key_file", path.parent)
    )
    name = iface.get("name", default_name(path))
    if not isinstance(name, str) or not IFNAME.match(name):
        err("name", "must be 1-15 characters of letters, digits and _=+.-")
    cfg = NodeConfig(path=path, name=name, private_key=key)
    if "listen_port" in iface:
        cfg.listen_port = _int(iface["listen_port"], err, "listen_port", 0, 65535)
    if "address" in iface:
        cfg.addresses = _interfaces(_str_list(iface["address"], err, "address"), err, "address")
    if "mtu" in iface:
        cfg.mtu = _int(iface["mtu"], err, "mtu", 576, 65535)
    for k in ("state_dir", "control_socket"):
        if k in iface:
            if not isinstance(iface[k], str) or not iface[k]:
                err(k, "must be a path")
            setattr(cfg, k, Path(iface[k]))
    peers = data.get("peer", [])
    if not isinstance(peers, list):
        raise ConfigError(path, _toml_line(text, "peer", 0, None), "peer", "use [[peer]] tables")
    for i, table in enumerate(peers):
        cfg.peers.append(_toml_peer(path, text, i, table))
    if "exit" in data:
        cfg.exit = _toml_exit(path, text, data["exit"])
    if "accounting" in data:
        cfg.accounting, cfg.epoch_seconds = _toml_accounting(path, text, data["accounting"])
    _check_peers(cfg)
    return cfg


def _toml_peer(path: Path, text: str, i: int, table: dict[str, Any]) -> PeerSpec:
    err = _toml_err(path, text, "peer", i)
    known = {
        "public_key",
        "preshared_key",
        "preshared_key_file",
        "endpoint",
        "allowed_ips",
        "persistent_keepalive",
        "mode",
        "provider",
    }
    _unknown(table, known, err)
    if "public_key" not in table:
        err("public_key", "is required")
    peer = PeerSpec(
        public_key=_key(table["public_key"], err, "public_key"),
        line=_toml_line(text, "peer", i, None) or 0,
    )
    if "preshared_key" in table and "preshared_key_file" in table:
        err("preshared_key", "set at most one of preshared_key and preshared_key_file")
    if "preshared_key" in table:
        peer.preshared_key = _key(table["preshared_key"], err, "preshared_key")
    if "preshared_key_file" in table:
        peer.preshared_key = _key_file(
            table["preshared_key_file"], err, "preshared_key_file", path.parent
        )
    if "endpoint" in table:
        peer.endpoint = _endpoint(table["endpoint"], err, "endpoint")
    if "allowed_ips" in table:
        peer.allowed_ips = _networks(
            _str_list(table["allowed_ips"], err, "allowed_ips"), err, "allowed_ips"
        )
    if "persistent_keepalive" in table:
        peer.persistent_keepalive = _int(
            table["persistent_keepalive"], err, "persistent_keepalive", 0, 65535
        )
    if "mode" in table:
        if table["mode"] not in ("native", "wireguard"):
            err("mode", 'must be "native" or "wireguard"')
        peer.mode = Mode(table["mode"])
    if "provider" in table:
        peer.provider = _bool(table["provider"], err, "provider")
    return peer


def _toml_exit(path: Path, text: str, table: Any) -> ExitSpec:
    err = _toml_err(path, text, "exit", 0)
    if not isinstance(table, dict):
        err("exit", "must be a table")
    _unknown(table, {"enabled", "outbound_interface", "allow", "deny"}, err)
    spec = ExitSpec()
    if "enabled" in table:
        spec.enabled = _bool(table["enabled"], err, "enabled")
    if "outbound_interface" in table:
        v = table["outbound_interface"]
        if not isinstance(v, str) or not IFNAME.match(v):
            err("outbound_interface", "must be an interface name")
        spec.outbound_interface = v
    for k in ("allow", "deny"):
        rules = []
        for item in _str_list(table.get(k, []), err, k):
            try:
                rules.append(parse_rule(item))
            except ValueError as exc:
                err(k, str(exc))
        setattr(spec, k, rules)
    return spec


def _toml_accounting(path: Path, text: str, table: Any) -> tuple[AccountingConfig, int]:
    err = _toml_err(path, text, "accounting", 0)
    if not isinstance(table, dict):
        err("accounting", "must be a table")
    ints = {
        "credit_window": (1 << 16, 1 << 40),
        "credit_max": (1 << 16, 1 << 44),
        "invoice_bytes": (1 << 12, 1 << 36),
        "slack": (0, 1 << 36),
        "epoch_seconds": (60, 1 << 32),
    }
    floats = {"invoice_interval": (0.05, 3600.0), "cutoff": (1.0, 86400.0), "tolerance": (0.0, 1.0)}
    _unknown(table, set(ints) | set(floats), err)
    values: dict[str, Any] = {}
    for k, (lo, hi) in ints.items():
        if k in table:
            values[k] = _int(table[k], err, k, lo, hi)
    for k, (flo, fhi) in floats.items():
        if k in table:
            v = table[k]
            if isinstance(v, bool) or not isinstance(v, int | float) or not flo <= v <= fhi:
                err(k, f"must be a number from {flo} to {fhi}")
            values[k] = float(v)
    epoch = values.pop("epoch_seconds", 86400)
    acct = AccountingConfig(**values)
    if acct.credit_max < acct.credit_window:
        err("credit_max", "must be at least credit_window")
    return acct, epoch
