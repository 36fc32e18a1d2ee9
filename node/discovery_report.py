"""What the operator sees of discovery: its counters in the node's metrics registry
(the DHT's, gossip's, the record cache's; read when asked, since the DHT socket exists
only once discovery runs), the `discovery` part of `tidewire status --json`, and the
report `tidewire discover` shows, records as JSON (`record_json`)."""

import base64
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tidewire.node.metrics import Registry
from tidewire.protocol.control.records import NodeRecord

if TYPE_CHECKING:
    from tidewire.node.dht import DhtService
    from tidewire.node.discovery import Discovery

STATUS_FAMILIES = (
    "tidewire_dht_nodes",
    "tidewire_dht_drops_total",
    "tidewire_dht_answered_total",
    "tidewire_dht_store_events_total",
    "tidewire_dht_sources_evicted_total",
    "tidewire_gossip_neighbours",
    "tidewire_gossip_events_total",
    "tidewire_records_held",
    "tidewire_records_total",
)


def register(disc: "Discovery", reg: Registry) -> None:
    """The DHT's, gossip's and the record cache's counters, in the node's registry
    (read when asked: the DHT socket exists only once `run` has bound it)."""

    def dht(read: Callable[["DhtService"], Any]) -> Callable[[], Any]:
        return lambda: read(disc.svc) if disc.svc is not None else []

    reg.labelled(
        "tidewire_dht_drops_total",
        "DHT datagrams and items refused (malformed, unasked, rate-limited...), by reason.",
        label="reason",
        read=dht(lambda svc: svc.node.drops.items()),
    )
    reg.labelled(
        "tidewire_dht_answered_total",
        "DHT queries answered, by method.",
        label="method",
        read=dht(lambda svc: svc.node.answered.items()),
    )
    reg.labelled(
        "tidewire_dht_store_events_total",
        "What the DHT stores for others refused or evicted at its bounds.",
        label="event",
        read=dht(lambda svc: [*svc.node.peers.counters.items(), *svc.node.items.counters.items()]),
    )
    reg.value(
        "tidewire_dht_sources_evicted_total",
        "Query sources the DHT's bounded rate-limit table forgot to make room.",
        lambda: disc.svc.node.limits.evicted if disc.svc is not None else 0,
        kind="counter",
    )
    reg.value(
        "tidewire_dht_nodes",
        "Nodes in the DHT routing table.",
        lambda: len(disc.svc.node.table) if disc.svc is not None else 0,
        kind="gauge",
    )
    reg.labelled(
        "tidewire_gossip_events_total",
        "Gossip of node records: pushes and pulls sent, taken, refused, rate-limited.",
        label="event",
        read=lambda: disc.gossip.counters.items() if disc.gossip is not None else [],
    )
    reg.value(
        "tidewire_gossip_neighbours",
        "Neighbours gossiped with.",
        lambda: len(disc.gossip.neighbours) if disc.gossip is not None else 0,
        kind="gauge",
    )
    reg.counters(
        "tidewire_records_total",
        "Node records offered to the cache: taken (by source), stale, invalid, expired.",
        label="event",
        source=disc.cache.counters,
    )
    reg.value(
        "tidewire_records_held",
        "Verified node records held.",
        lambda: len(disc.cache.records),
        kind="gauge",
    )


def status(reg: Registry) -> dict[str, Any]:
    """The `discovery` part of `tidewire status --json`: the families `register`
    added, read from the registry and named without `tidewire_` and `_total`."""
    out: dict[str, Any] = {}
    for name in STATUS_FAMILIES:
        values = reg.collect(name)
        key = name.removeprefix("tidewire_").removesuffix("_total")
        out[key] = values if reg.families[name].label else values[""]
    return out


def report(disc: "Discovery", *, region: str | None = None) -> dict[str, Any]:
    """`tidewire discover`'s answer (the caller confirms the bindings first)."""
    now = time.time()
    svc = disc.svc
    found = disc.cache.providers(region=region, now=now)
    return {
        "dht": {
            "port": svc.address[1] if svc else None,
            "nodes": len(svc.node.table) if svc else 0,
            "drops": dict(svc.node.drops) if svc else {},
            "region": disc.spec.region,
            "published_seq": disc.published.seq if disc.published else None,
            "last_lookup": disc.last_find,
        },
        "gossip": {
            "neighbours": len(disc.gossip.neighbours) if disc.gossip else 0,
            "counters": dict(disc.gossip.counters) if disc.gossip else {},
        },
        "records": dict(disc.cache.counters),
        "providers": [record_json(x.record, x.source) for x in found],
    }


def record_json(r: NodeRecord, source: str) -> dict[str, Any]:
    return {
        "public_key": base64.b64encode(r.public_key).decode(),
        "record_key": r.record_key.hex(),
        "source": source,
        "overlay": r.overlay,
        "endpoints": list(r.endpoints),
        "roles": list(r.roles),
        "price": r.price,
        "capacity": r.capacity,
        "clients": r.clients,
        "load": r.load,
        "region": r.region,
        "version": r.version,
        "seq": r.seq,
        "expiry": r.expiry,
    }
