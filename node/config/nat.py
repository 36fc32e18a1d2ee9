"""[nat]: NAT traversal (docs/routing.md, "NAT traversal").

    [nat]
    punch = true      # find native peers that have no endpoint through our other peers
    mediate = true    # introduce two of our peers that each look the other up
    keepalive = 25    # s of persistent keepalive behind a NAT (0: never automatic)

All three are on by default: a native peer with no endpoint that both sides list is
introduced by any node both have a session with, since each side's lookup is its
consent (a node is never introduced to a peer that did not ask for it). The automatic
keepalive applies to peers whose `persistent_keepalive` is not set in the file.
"""

from typing import Any

from . import NatSpec
from .fields import Err, integer

KNOWN = {"punch", "mediate", "keepalive"}


def load_nat(table: Any, err: Err) -> NatSpec:
    if not isinstance(table, dict):
        err("nat", "must be a table")
    unknown = [k for k in table if k not in KNOWN]
    if unknown:
        err(unknown[0], f"unknown key (known: {', '.join(sorted(KNOWN))})")
    spec = NatSpec()
    for name in ("punch", "mediate"):
        if name in table:
            if not isinstance(table[name], bool):
                err(name, "must be true or false")
            setattr(spec, name, table[name])
    if "keepalive" in table:
        spec.keepalive = integer(table["keepalive"], err, "keepalive", 0, 65535)
    return spec
