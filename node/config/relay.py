"""[relay]: forwarding other nodes' end-to-end datagrams (docs/protocol/relay.md).

    [relay]
    enabled = true            # forward frames between two of our peers (default false)
    pair_rate = "50 Mbit/s"   # per pair of ends, both directions together; "unlimited" is off
    pair_cap = "10 GB"        # bytes per pair while the relay remembers it; "unlimited" is off
    max_pairs = 256           # pairs remembered at once
    require_receipts = false  # paid like a provider: invoices, receipts, [accounting]'s credit
    price = 0                 # micro-units of the token per GiB relayed (as [exit] price)

Every node delivers frames addressed to itself; only `enabled` makes it forward.
"""

from typing import Any

from tidewire.node.core.relay import RelayConfig

from .fields import Err, integer
from .share import RATE_EXAMPLE, parse_rate, parse_size
from .toml_table import boolean

KEYS = ("enabled", "pair_rate", "pair_cap", "max_pairs", "require_receipts", "price")


def relay_table(table: Any, err: Err) -> RelayConfig:
    if not isinstance(table, dict):
        err("relay", "must be a table")
    for k in table:
        if k not in KEYS:
            err(k, f"unknown key (known: {', '.join(sorted(KEYS))})")
    cfg = RelayConfig()
    for key in ("enabled", "require_receipts"):
        if key in table:
            setattr(cfg, key, boolean(table[key], err, key))
    if "price" in table:
        cfg.price = integer(table["price"], err, "price", 0, 1 << 62)
    if "pair_rate" in table:
        value = table["pair_rate"]
        if not isinstance(value, str):
            err("pair_rate", f'must be {RATE_EXAMPLE} in quotes, or "unlimited"')
        try:
            cfg.pair_rate = parse_rate(value)  # "unlimited" is None
        except ValueError as exc:
            err("pair_rate", str(exc))
    if "pair_cap" in table:
        value = table["pair_cap"]
        if not isinstance(value, str):
            err("pair_cap", 'must be a size in quotes, like "10 GB" or "500 MiB", or "unlimited"')
        try:
            cfg.pair_cap = None if value.strip() == "unlimited" else parse_size(value)
        except ValueError as exc:
            err("pair_cap", str(exc))
        if cfg.pair_cap == 0:
            err("pair_cap", 'must be at least one byte (or "unlimited")')
    if "max_pairs" in table:
        cfg.max_pairs = integer(table["max_pairs"], err, "max_pairs", 1, 1 << 20)
    return cfg
