"""tidewire's TOML configuration (the schema is in the README)."""

import re
import tomllib
from ipaddress import ip_address
from pathlib import Path
from typing import Any, NoReturn

from tidewire.node.core.accounting import AccountingConfig
from tidewire.node.core.exit_policy import parse_rule
from tidewire.protocol.keys import derive_public
from tidewire.protocol.link.profile import Mode
from tidewire.protocol.types import MASKED, TCP, TLS, UDP

from . import (
    ClientDefaults,
    ConfigError,
    DnsSpec,
    ExitSpec,
    NodeConfig,
    PeerSpec,
    default_name,
    parse_endpoint,
    service,
)
from .discovery import load_discovery
from .fields import (
    Err,
    check_peers,
    dns_entries,
    endpoint,
    endpoints,
    file_path,
    integer,
    interface_name,
    interfaces,
    key,
    key_file,
    listen,
    listen_address,
    networks,
    peer_key,
    socket_path,
    upstreams,
)
from .nat import load_nat
from .relay import relay_table
from .routing import load_routing
from .share import (
    Rate,
    ShareConfig,
    Window,
    describe,
    overlap,
    parse_quota,
    parse_rate,
    parse_time,
)
from .tls import check_stream_mtu, tls_table

TABLES = (
    "interface",
    "peer",
    "exit",
    "accounting",
    "share",
    "client",
    "metrics",
    "dns",
    "discovery",
    "tls",
    "nat",
    "routing",
    "relay",
)

SERVICE_KEYS = ("table", "fwmark", "kill_switch", "kill_switch_allow_lan", *service.HOOKS)

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


def load_toml(path: Path, text: str) -> NodeConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise ConfigError(path, int(m.group(1)) if m else None, "TOML", str(exc)) from None
    top_err = _toml_err(path, text, "interface", 0)
    for k in data:
        if k not in TABLES:
            raise ConfigError(
                path,
                None,
                k,
                "unknown table (known: [interface], [[peer]], [exit], [accounting], [share],"
                " [client], [metrics], [dns], [discovery], [tls], [nat], [routing], [relay])",
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
        "listen",
        "address",
        "mtu",
        "state_dir",
        "control_socket",
        "dns",
        *SERVICE_KEYS,
    }
    _unknown(iface, known, err)
    if ("private_key" in iface) == ("private_key_file" in iface):
        err("private_key", "set exactly one of private_key and private_key_file")
    private = (
        key(iface["private_key"], err, "private_key")
        if "private_key" in iface
        else key_file(iface["private_key_file"], err, "private_key_file", path.parent)
    )
    if "name" in iface:
        name = interface_name(iface["name"], err, "name")
    else:
        name = default_name(path)
        interface_name(name, _file_name_err(path), "name")
    cfg = NodeConfig(path=path, name=name, private_key=private)
    if "listen_port" in iface and "listen" in iface:
        err("listen", "set listen or listen_port, not both (listen_port is one udp:// entry)")
    if "listen_port" in iface:
        cfg.listen_port = integer(iface["listen_port"], err, "listen_port", 0, 65535)
    if "listen" in iface:
        ports = listen(_str_list(iface["listen"], err, "listen"), err, "listen")
        cfg.listen_port, cfg.masked_port = ports.get(UDP), ports.get(MASKED)
        cfg.tcp_port, cfg.tls_port = ports.get(TCP), ports.get(TLS)
    if "address" in iface:
        cfg.addresses = interfaces(_str_list(iface["address"], err, "address"), err, "address")
    if "mtu" in iface:
        cfg.mtu = integer(iface["mtu"], err, "mtu", 576, 65535)
    if "state_dir" in iface:
        cfg.state_dir = Path(file_path(iface["state_dir"], err, "state_dir"))
    if "control_socket" in iface:
        cfg.control_socket = socket_path(iface["control_socket"], err, "control_socket")
    if "dns" in iface:
        cfg.dns.servers, cfg.dns.search = dns_entries(
            _str_list(iface["dns"], err, "dns"), err, "dns"
        )
    cfg.service = _toml_service(path, text, iface, err)
    peers = data.get("peer", [])
    if not isinstance(peers, list) or not all(isinstance(t, dict) for t in peers):
        raise ConfigError(path, _toml_line(text, "peer", 0, None), "peer", "use [[peer]] tables")
    own_public = derive_public(private)
    for i, table in enumerate(peers):
        cfg.peers.append(_toml_peer(path, text, i, table, (private, own_public)))
    if "exit" in data:
        cfg.exit = _toml_exit(path, text, data["exit"])
    if "accounting" in data:
        cfg.accounting, cfg.epoch_seconds = _toml_accounting(path, text, data["accounting"])
    if "share" in data:
        cfg.share = _toml_share(path, text, data["share"])
    if "client" in data:
        cfg.client = _toml_client(path, text, data["client"])
    if "metrics" in data:
        cfg.metrics_listen = _toml_metrics(path, text, data["metrics"], cfg.warnings)
    if "dns" in data:
        _toml_dns(path, text, data["dns"], cfg.dns)
    if "discovery" in data:
        cfg.discovery = load_discovery(data["discovery"], _toml_err(path, text, "discovery", 0))
    if "nat" in data:
        cfg.nat = load_nat(data["nat"], _toml_err(path, text, "nat", 0))
    if "routing" in data:
        cfg.routing = load_routing(
            data["routing"], _toml_err(path, text, "routing", 0), own_public=own_public
        )
    if "tls" in data:
        cfg.tls = tls_table(data["tls"], _toml_err(path, text, "tls", 0), path.parent)
    if "relay" in data:
        cfg.relay = relay_table(data["relay"], _toml_err(path, text, "relay", 0))
    check_peers(cfg)
    check_stream_mtu(cfg, err)
    return cfg


def _toml_service(path: Path, text: str, iface: dict[str, Any], err: Err) -> service.ServiceSpec:
    """[interface] table, fwmark, the kill switch and the hooks (each a command or a list)."""
    spec = service.ServiceSpec()
    if "table" in iface:
        spec.table = service.table(iface["table"], err, "table")
    if "fwmark" in iface:
        spec.fwmark = service.fwmark(iface["fwmark"], err, "fwmark")
    for k in ("kill_switch", "kill_switch_allow_lan"):
        if k in iface:
            setattr(spec, k, _bool(iface[k], err, k))
    for k in service.HOOKS:
        line = _toml_line(text, "interface", 0, k)
        commands = _str_list(iface.get(k, []), err, k)
        label = f"[interface] {k}"
        spec.hooks[k] = [service.hook(c, err, k, line=line, label=label) for c in commands]
    return spec


def _toml_metrics(path: Path, text: str, table: Any, warnings: list[str]) -> tuple[str, int]:
    """[metrics] listen = "127.0.0.1:9586": where the Prometheus endpoint listens."""
    err = _toml_err(path, text, "metrics", 0)
    if not isinstance(table, dict):
        err("metrics", "must be a table")
    _unknown(table, {"listen"}, err)
    if "listen" not in table:
        err("listen", 'is required (an address and port, like "127.0.0.1:9586")')
    host, port = listen_address(table["listen"], err, "listen")
    if port == 0:
        err("listen", "needs a port from 1 to 65535 (a scraper must know where to look)")
    if not ip_address(host).is_loopback:
        line = _toml_line(text, "metrics", 0, "listen")
        warnings.append(
            f"{path}:{line}: [metrics] listen: {host} is not a loopback address;"
            " the counters are readable from the network"
        )
    return host, port


def _file_name_err(path: Path) -> Err:
    def err(key: str, message: str) -> NoReturn:
        raise ConfigError(path, None, "interface name (the file name)", message)

    return err


def _toml_peer(
    path: Path, text: str, i: int, table: dict[str, Any], own: tuple[bytes, bytes]
) -> PeerSpec:
    err = _toml_err(path, text, "peer", i)
    known = {
        "public_key",
        "preshared_key",
        "preshared_key_file",
        "endpoint",
        "endpoints",
        "allowed_ips",
        "persistent_keepalive",
        "mode",
        "provider",
        "neighbour",
    }
    _unknown(table, known, err)
    if "public_key" not in table:
        err("public_key", "is required")
    peer = PeerSpec(
        public_key=peer_key(table["public_key"], err, "public_key", *own),
        line=_toml_line(text, "peer", i, None) or 0,
    )
    if "preshared_key" in table and "preshared_key_file" in table:
        err("preshared_key", "set at most one of preshared_key and preshared_key_file")
    if "preshared_key" in table:
        peer.preshared_key = key(table["preshared_key"], err, "preshared_key")
    if "preshared_key_file" in table:
        peer.preshared_key = key_file(
            table["preshared_key_file"], err, "preshared_key_file", path.parent
        )
    if "endpoint" in table and "endpoints" in table:
        err("endpoints", "set endpoint or endpoints, not both (endpoint is one udp:// entry)")
    if "allowed_ips" in table:
        peer.allowed_ips = networks(
            _str_list(table["allowed_ips"], err, "allowed_ips"), err, "allowed_ips"
        )
    if "persistent_keepalive" in table:
        peer.persistent_keepalive = integer(
            table["persistent_keepalive"], err, "persistent_keepalive", 0, 65535
        )
        peer.keepalive_set = True
    if "mode" in table:
        if table["mode"] not in ("native", "wireguard"):
            err("mode", 'must be "native" or "wireguard"')
        peer.mode = Mode(table["mode"])
    if "provider" in table:
        peer.provider = _bool(table["provider"], err, "provider")
    if "neighbour" in table:
        peer.neighbour = _bool(table["neighbour"], err, "neighbour")
        if peer.neighbour and peer.mode is not Mode.NATIVE:
            err("neighbour", 'needs mode = "native": routes travel on the control channel')
    if "endpoint" in table:
        peer.endpoint = endpoint(table["endpoint"], err, "endpoint")
    if "endpoints" in table:  # after mode: a wireguard-mode peer may only have udp://
        listed = _str_list(table["endpoints"], err, "endpoints")
        found = endpoints(listed, err, "endpoints", peer.mode)
        peer.endpoint, peer.fallbacks = found[0], found[1:]
    for k in ("endpoint", "endpoints"):
        if k in table:
            peer.where["endpoint"] = (_toml_line(text, "peer", i, k), f"[[peer]] #{i + 1} {k}")
    return peer


def _toml_client(path: Path, text: str, table: Any) -> ClientDefaults:
    err = _toml_err(path, text, "client", 0)
    if not isinstance(table, dict):
        err("client", "must be a table")
    _unknown(table, {"endpoint", "dns"}, err)
    spec = ClientDefaults()
    if "endpoint" in table:
        value = table["endpoint"]
        if not isinstance(value, str):
            err("endpoint", 'must be "host:port" in quotes (this node as its clients reach it)')
        try:
            parse_endpoint(value)
        except ValueError as exc:
            err("endpoint", str(exc))
        spec.endpoint = value
    if "dns" in table:
        for item in _str_list(table["dns"], err, "dns"):
            try:
                spec.dns.append(str(ip_address(item)))
            except ValueError:
                err("dns", f"{item!r} is not an IP address")
    return spec


def _toml_exit(path: Path, text: str, table: Any) -> ExitSpec:
    err = _toml_err(path, text, "exit", 0)
    if not isinstance(table, dict):
        err("exit", "must be a table")
    _unknown(table, {"enabled", "outbound_interface", "allow", "deny", "open", "price"}, err)
    spec = ExitSpec()
    if "enabled" in table:
        spec.enabled = _bool(table["enabled"], err, "enabled")
    if "open" in table:
        spec.open = _bool(table["open"], err, "open")
    if "price" in table:
        spec.price = integer(table["price"], err, "price", 0, 1 << 62)
    if "outbound_interface" in table:
        spec.outbound_interface = interface_name(
            table["outbound_interface"], err, "outbound_interface"
        )
        spec.where["outbound_interface"] = (
            _toml_line(text, "exit", 0, "outbound_interface"),
            "[exit] outbound_interface",
        )
    for k in ("allow", "deny"):
        rules = []
        for item in _str_list(table.get(k, []), err, k):
            try:
                rules.append(parse_rule(item))
            except ValueError as exc:
                err(k, str(exc))
        setattr(spec, k, rules)
    return spec


def _toml_dns(path: Path, text: str, table: Any, spec: DnsSpec) -> None:
    """[dns]: a provider's resolver for its clients (a client's own servers are
    [interface] dns)."""
    err = _toml_err(path, text, "dns", 0)
    if not isinstance(table, dict):
        err("dns", "must be a table")
    _unknown(table, {"resolver", "upstream"}, err)
    spec.resolver = _bool(table.get("resolver", False), err, "resolver")
    if "upstream" in table:
        spec.upstream = upstreams(_str_list(table["upstream"], err, "upstream"), err, "upstream")


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
            values[k] = integer(table[k], err, k, lo, hi)
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


def _rate(value: Any, err: Err, key: str) -> Rate:
    if not isinstance(value, str):
        err(key, 'must be a rate in quotes, like "50 Mbit/s"')
    try:
        return parse_rate(value)
    except ValueError as exc:
        err(key, str(exc))


def _toml_share(path: Path, text: str, table: Any) -> ShareConfig:
    err = _toml_err(path, text, "share", 0)
    if not isinstance(table, dict):
        err("share", "must be a table")
    _unknown(table, {"download", "upload", "per_client", "max_clients", "quota", "schedule"}, err)
    rates = {k: _rate(table[k], err, k) for k in ("download", "upload", "per_client") if k in table}
    max_clients = None
    if "max_clients" in table:
        max_clients = integer(table["max_clients"], err, "max_clients", 1, 1 << 32)
    quota = None
    if "quota" in table:
        if not isinstance(table["quota"], str):
            err("quota", 'must be a quota in quotes, like "500 GB/month"')
        try:
            quota = parse_quota(table["quota"])
        except ValueError as exc:
            err("quota", str(exc))
    base = (rates.get("download"), rates.get("upload"))
    schedule = _toml_schedule(table.get("schedule", []), err, base)
    return ShareConfig(
        download=base[0],
        upload=base[1],
        per_client=rates.get("per_client"),
        max_clients=max_clients,
        quota=quota,
        schedule=schedule,
    )


def _time(window: dict[str, Any], key: str, err: Err) -> int:
    if key not in window:
        err(key, "is required")
    if not isinstance(window[key], str):
        err(key, 'must be a time of day in quotes, "HH:MM"')
    try:
        return parse_time(window[key])
    except ValueError as exc:
        err(key, str(exc))


def _toml_schedule(value: Any, err: Err, base: tuple[Rate, Rate]) -> tuple[Window, ...]:
    key = "schedule"
    if not isinstance(value, list) or not all(isinstance(w, dict) for w in value):
        err(key, 'must be a list of windows like { from = "00:00", to = "07:00", download = ... }')
    windows: list[Window] = []
    for n, item in enumerate(value, 1):
        label = f"window #{n}"

        def werr(k: str, message: str, label: str = label) -> NoReturn:
            err(key, f"{label} {k}: {message}")

        _unknown(item, {"from", "to", "download", "upload"}, werr)
        start, end = (_time(item, k, werr) for k in ("from", "to"))
        if start == end:
            werr("to", "is the same time as from (an empty window)")
        if "download" not in item and "upload" not in item:
            werr("download", "set download, upload or both")
        window = Window(
            start,
            end,
            _rate(item["download"], werr, "download") if "download" in item else base[0],
            _rate(item["upload"], werr, "upload") if "upload" in item else base[1],
        )
        for m, other in enumerate(windows, 1):
            if overlap(window, other):
                err(key, f"{label} ({describe(window)}) overlaps window #{m} ({describe(other)})")
        windows.append(window)
    return tuple(windows)
