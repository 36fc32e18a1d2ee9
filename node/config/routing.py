"""[routing]: where a client sends its traffic and how the exit is chosen (docs/routing.md).

    [routing]
    exit = "auto"                      # or a provider's public key (base64)
    max_price = 2000000                # micro-units of the token per GiB; none: any price
    region = "eu-west"                 # only providers announcing this tag
    avoid = ["hIkX...Q="]              # providers never to use
    hops = 1                           # 2: through a relay, never direct (at most 2)
    routes = ["0.0.0.0/0", "::/0"]     # the prefixes sent to the exit (the default)

With `exit = "auto"` the node picks a provider from the records it learned (gossip, the
DHT) by score (node/core/exits.py), adds it as a native peer with `routes` as its
allowed IPs, and moves them to another when that is clearly better or the exit stops
answering. `hops = 2` sends the session through a relay and never directly, so the exit
never sees our address (node/core/exits.py). A relay frame names its destination, not a
chain: after the first relay the relays' routes decide, so `hops` above 2 cannot be
promised and is refused.
"""

from dataclasses import dataclass, field
from typing import Any

from . import Network
from .discovery import region_tag
from .fields import Err, integer, key, networks

KNOWN = {"exit", "max_price", "region", "avoid", "hops", "routes"}
DEFAULT_ROUTES = ("0.0.0.0/0", "::/0")
MAX_AVOID = 256
MAX_HOPS = 2  # a client chooses its first relay only (docs/protocol/relay.md)


@dataclass
class RoutingSpec:
    exit: bytes | None = None  # a fixed provider; None with `auto`
    auto: bool = False
    max_price: int | None = None
    region: str | None = None
    avoid: frozenset[bytes] = frozenset()
    hops: int = 1
    routes: list[Network] = field(default_factory=list)

    @property
    def enabled(self) -> bool:
        return self.auto or self.exit is not None


def load_routing(table: Any, err: Err, *, own_public: bytes) -> RoutingSpec:
    if not isinstance(table, dict):
        err("routing", "must be a table")
    for k in table:
        if k not in KNOWN:
            err(k, f"unknown key (known: {', '.join(sorted(KNOWN))})")
    spec = RoutingSpec(routes=networks(list(DEFAULT_ROUTES), err, "routes"))
    if "exit" not in table:
        err("exit", 'is required: "auto" or a provider\'s public key')
    choice = table["exit"]
    if choice == "auto":
        spec.auto = True
    else:
        spec.exit = key(choice, err, "exit")
        if spec.exit == own_public:
            err("exit", "is this node's own public key")
    if "max_price" in table:
        spec.max_price = integer(table["max_price"], err, "max_price", 0, 1 << 62)
    if "region" in table:
        spec.region = region_tag(table["region"], err)
    if "avoid" in table:
        avoid = table["avoid"]
        if not isinstance(avoid, list) or len(avoid) > MAX_AVOID:
            err("avoid", f"must be a list of at most {MAX_AVOID} public keys")
        spec.avoid = frozenset(key(k, err, "avoid") for k in avoid)
    if "hops" in table:
        spec.hops = integer(table["hops"], err, "hops", 1, 8)
        if spec.hops > MAX_HOPS:
            err(
                "hops",
                "above 2 needs relay chains chosen by the client, which the relay frame "
                "does not carry (it names only the destination): use 1 or 2",
            )
    if "routes" in table:
        routes = table["routes"]
        if not (isinstance(routes, list) and routes and all(isinstance(r, str) for r in routes)):
            err("routes", 'must be a non-empty list of prefixes, like ["0.0.0.0/0", "::/0"]')
        spec.routes = networks(routes, err, "routes")
    return spec
