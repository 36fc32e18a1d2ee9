"""[discovery]: joining the Mainline DHT, and where gossip starts (DESIGN.md, "Discovery").

    [discovery]
    dht = true
    dht_port = 6881                       # UDP; default: a free port
    dht_bootstrap = ["router.example:6881", "203.0.113.9:6881"]
    region = "eu-west"                    # what a provider announces under, a client seeks
    bootstrap = ["hIkX...Q=@masked://203.0.113.5:8443", "Zm9v...=@198.51.100.7:51820"]

`bootstrap` lists tidewire nodes to gossip with from the start (docs/protocol/gossip.md): each
entry is a node's link key (base64, as in `status`), "@", and one endpoint in the
peers' `endpoints` syntax (udp://, masked://, tcp://, tls:// or a bare host:port,
udp). The key is needed because a link is only ever opened to a known key; the node
at the other end must know this node's key too. A bootstrap node that is not a
configured peer is added for the run with no allowed IPs: its session carries
control messages only. Bootstrap nodes are configuration: nothing is contacted that
the operator did not name. Gossip runs with or without the DHT.
"""

import re
from typing import Any

from tidewire.protocol.link.profile import Mode

from . import DiscoverySpec
from .fields import Err, endpoints, integer, key

KNOWN = {"dht", "dht_port", "dht_bootstrap", "region", "bootstrap"}
MAX_BOOTSTRAP = 16
REGION = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
HOST = re.compile(r"[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]+\]")


def load_discovery(table: Any, err: Err) -> DiscoverySpec:
    if not isinstance(table, dict):
        err("discovery", "must be a table")
    for k in table:
        if k not in KNOWN:
            err(k, f"unknown key (known: {', '.join(sorted(KNOWN))})")
    spec = DiscoverySpec()
    if "dht" in table:
        if not isinstance(table["dht"], bool):
            err("dht", "must be true or false")
        spec.dht = table["dht"]
    if "dht_port" in table:
        spec.dht_port = integer(table["dht_port"], err, "dht_port", 1, 65535)
    if "dht_bootstrap" in table:
        entries = table["dht_bootstrap"]
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            err("dht_bootstrap", 'must be a list of "host:port" strings')
        spec.dht_bootstrap = [_host_port(e, err) for e in entries]
    if "region" in table:
        spec.region = region_tag(table["region"], err)
    if "bootstrap" in table:
        entries = table["bootstrap"]
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            err("bootstrap", 'must be a list of "KEY@ENDPOINT" strings')
        if len(entries) > MAX_BOOTSTRAP:
            err("bootstrap", f"lists {len(entries)} nodes; at most {MAX_BOOTSTRAP}")
        spec.bootstrap = [_node(e, err) for e in entries]
    if spec.dht and not spec.dht_bootstrap:
        err("dht_bootstrap", "is required when dht = true (at least one host:port)")
    return spec


def region_tag(value: Any, err: Err) -> str:
    if not isinstance(value, str) or not REGION.fullmatch(value):
        err("region", "must be a tag of lower-case letters, digits and dashes (at most 32)")
    return value


def _host_port(entry: str, err: Err) -> tuple[str, int]:
    host, sep, port = entry.rpartition(":")
    if not sep or not HOST.fullmatch(host) or not port.isdigit() or not 0 < int(port) < 65536:
        err("dht_bootstrap", f"{entry!r} is not host:port")
    return host.strip("[]"), int(port)


def _node(entry: str, err: Err) -> tuple[bytes, str]:
    text, sep, where = entry.strip().partition("@")
    if not sep:
        err("bootstrap", f"{entry!r} is not KEY@ENDPOINT (a base64 link key, @, an endpoint)")
    [path] = endpoints([where], err, "bootstrap", Mode.NATIVE)
    return key(text, err, "bootstrap"), path
