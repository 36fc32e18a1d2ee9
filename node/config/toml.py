"""tidewire's TOML configuration (the schema is in the README): the file as a whole and
its [interface] table; [[peer]] is read in toml_peer.py, the provider's tables in
toml_provider.py, and the line lookup and shared value checks in toml_table.py."""

import re
import tomllib
from ipaddress import ip_address
from pathlib import Path
from typing import Any

from tidewire.protocol.keys import derive_public
from tidewire.protocol.types import MASKED, TCP, TLS, UDP

from . import ConfigError, NodeConfig, default_name, service
from .discovery import load_discovery
from .fields import (
    Err,
    check_peers,
    dns_entries,
    file_path,
    integer,
    interface_name,
    interfaces,
    key,
    key_file,
    listen,
    listen_address,
    socket_path,
)
from .nat import load_nat
from .relay import relay_table
from .routing import load_routing
from .tls import check_stream_mtu, tls_table
from .toml_peer import peer_table
from .toml_provider import accounting_table, client_table, dns_table, exit_table, share_table
from .toml_table import boolean, file_name_err, str_list, toml_err, toml_line, unknown

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


def load_toml(path: Path, text: str) -> NodeConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise ConfigError(path, int(m.group(1)) if m else None, "TOML", str(exc)) from None
    top_err = toml_err(path, text, "interface", 0)
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
    unknown(iface, known, err)
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
        interface_name(name, file_name_err(path), "name")
    cfg = NodeConfig(path=path, name=name, private_key=private)
    if "listen_port" in iface and "listen" in iface:
        err("listen", "set listen or listen_port, not both (listen_port is one udp:// entry)")
    if "listen_port" in iface:
        cfg.listen_port = integer(iface["listen_port"], err, "listen_port", 0, 65535)
    if "listen" in iface:
        ports = listen(str_list(iface["listen"], err, "listen"), err, "listen")
        cfg.listen_port, cfg.masked_port = ports.get(UDP), ports.get(MASKED)
        cfg.tcp_port, cfg.tls_port = ports.get(TCP), ports.get(TLS)
    if "address" in iface:
        cfg.addresses = interfaces(str_list(iface["address"], err, "address"), err, "address")
    if "mtu" in iface:
        cfg.mtu = integer(iface["mtu"], err, "mtu", 576, 65535)
    if "state_dir" in iface:
        cfg.state_dir = Path(file_path(iface["state_dir"], err, "state_dir"))
    if "control_socket" in iface:
        cfg.control_socket = socket_path(iface["control_socket"], err, "control_socket")
    if "dns" in iface:
        cfg.dns.servers, cfg.dns.search = dns_entries(
            str_list(iface["dns"], err, "dns"), err, "dns"
        )
    cfg.service = _toml_service(path, text, iface, err)
    peers = data.get("peer", [])
    if not isinstance(peers, list) or not all(isinstance(t, dict) for t in peers):
        raise ConfigError(path, toml_line(text, "peer", 0, None), "peer", "use [[peer]] tables")
    own_public = derive_public(private)
    for i, table in enumerate(peers):
        cfg.peers.append(peer_table(path, text, i, table, (private, own_public)))
    if "exit" in data:
        cfg.exit = exit_table(path, text, data["exit"])
    if "accounting" in data:
        cfg.accounting, cfg.epoch_seconds = accounting_table(path, text, data["accounting"])
    if "share" in data:
        cfg.share = share_table(path, text, data["share"])
    if "client" in data:
        cfg.client = client_table(path, text, data["client"])
    if "metrics" in data:
        cfg.metrics_listen = _toml_metrics(path, text, data["metrics"], cfg.warnings)
    if "dns" in data:
        dns_table(path, text, data["dns"], cfg.dns)
    if "discovery" in data:
        cfg.discovery = load_discovery(data["discovery"], toml_err(path, text, "discovery", 0))
    if "nat" in data:
        cfg.nat = load_nat(data["nat"], toml_err(path, text, "nat", 0))
    if "routing" in data:
        cfg.routing = load_routing(
            data["routing"], toml_err(path, text, "routing", 0), own_public=own_public
        )
    if "tls" in data:
        cfg.tls = tls_table(data["tls"], toml_err(path, text, "tls", 0), path.parent)
    if "relay" in data:
        cfg.relay = relay_table(data["relay"], toml_err(path, text, "relay", 0))
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
            setattr(spec, k, boolean(iface[k], err, k))
    for k in service.HOOKS:
        line = toml_line(text, "interface", 0, k)
        commands = str_list(iface.get(k, []), err, k)
        label = f"[interface] {k}"
        spec.hooks[k] = [service.hook(c, err, k, line=line, label=label) for c in commands]
    return spec


def _toml_metrics(path: Path, text: str, table: Any, warnings: list[str]) -> tuple[str, int]:
    """[metrics] listen = "127.0.0.1:9586": where the Prometheus endpoint listens."""
    err = toml_err(path, text, "metrics", 0)
    if not isinstance(table, dict):
        err("metrics", "must be a table")
    unknown(table, {"listen"}, err)
    if "listen" not in table:
        err("listen", 'is required (an address and port, like "127.0.0.1:9586")')
    host, port = listen_address(table["listen"], err, "listen")
    if port == 0:
        err("listen", "needs a port from 1 to 65535 (a scraper must know where to look)")
    if not ip_address(host).is_loopback:
        line = toml_line(text, "metrics", 0, "listen")
        warnings.append(
            f"{path}:{line}: [metrics] listen: {host} is not a loopback address;"
            " the counters are readable from the network"
        )
    return host, port
