"""What a provider offers, from a TOML config: [exit] (policy, open admission, price),
[accounting] (credit and invoices), [share] (rates, quota, schedule), [dns] (the
resolver for clients) and [client] (the defaults `tidewire client add` writes)."""

from ipaddress import ip_address
from pathlib import Path
from typing import Any, NoReturn

from tidewire.node.core.accounting import AccountingConfig
from tidewire.node.core.exit_policy import parse_rule

from . import ClientDefaults, DnsSpec, ExitSpec, parse_endpoint
from .fields import Err, integer, interface_name, upstreams
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
from .toml_table import boolean, str_list, toml_err, toml_line, unknown


def client_table(path: Path, text: str, table: Any) -> ClientDefaults:
    err = toml_err(path, text, "client", 0)
    if not isinstance(table, dict):
        err("client", "must be a table")
    unknown(table, {"endpoint", "dns"}, err)
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
        for item in str_list(table["dns"], err, "dns"):
            try:
                spec.dns.append(str(ip_address(item)))
            except ValueError:
                err("dns", f"{item!r} is not an IP address")
    return spec


def exit_table(path: Path, text: str, table: Any) -> ExitSpec:
    err = toml_err(path, text, "exit", 0)
    if not isinstance(table, dict):
        err("exit", "must be a table")
    unknown(table, {"enabled", "outbound_interface", "allow", "deny", "open", "price"}, err)
    spec = ExitSpec()
    if "enabled" in table:
        spec.enabled = boolean(table["enabled"], err, "enabled")
    if "open" in table:
        spec.open = boolean(table["open"], err, "open")
    if "price" in table:
        spec.price = integer(table["price"], err, "price", 0, 1 << 62)
    if "outbound_interface" in table:
        spec.outbound_interface = interface_name(
            table["outbound_interface"], err, "outbound_interface"
        )
        spec.where["outbound_interface"] = (
            toml_line(text, "exit", 0, "outbound_interface"),
            "[exit] outbound_interface",
        )
    for k in ("allow", "deny"):
        rules = []
        for item in str_list(table.get(k, []), err, k):
            try:
                rules.append(parse_rule(item))
            except ValueError as exc:
                err(k, str(exc))
        setattr(spec, k, rules)
    return spec


def dns_table(path: Path, text: str, table: Any, spec: DnsSpec) -> None:
    """[dns]: a provider's resolver for its clients (a client's own servers are
    [interface] dns)."""
    err = toml_err(path, text, "dns", 0)
    if not isinstance(table, dict):
        err("dns", "must be a table")
    unknown(table, {"resolver", "upstream"}, err)
    spec.resolver = boolean(table.get("resolver", False), err, "resolver")
    if "upstream" in table:
        spec.upstream = upstreams(str_list(table["upstream"], err, "upstream"), err, "upstream")


def accounting_table(path: Path, text: str, table: Any) -> tuple[AccountingConfig, int]:
    err = toml_err(path, text, "accounting", 0)
    if not isinstance(table, dict):
        err("accounting", "must be a table")
    ints = {
        "credit_window": (1 << 16, 1 << 40),
        "credit_max": (1 << 16, 1 << 44),
        "invoice_bytes": (1 << 12, 1 << 36),
        "slack": (0, 1 << 36),
        "epoch_seconds": (60, 1 << 32),
    }
    floats = {
        "invoice_interval": (0.05, 3600.0),
        "cutoff": (1.0, 86400.0),
        "tolerance": (0.0, 1.0),
        "loss_max": (0.0, 1.0),
    }
    unknown(table, set(ints) | set(floats), err)
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


def share_table(path: Path, text: str, table: Any) -> ShareConfig:
    err = toml_err(path, text, "share", 0)
    if not isinstance(table, dict):
        err("share", "must be a table")
    unknown(table, {"download", "upload", "per_client", "max_clients", "quota", "schedule"}, err)
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

        unknown(item, {"from", "to", "download", "upload"}, werr)
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
