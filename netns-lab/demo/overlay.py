"""The overlay: routes and discovery between tidewire nodes.

- routing: three native nodes in a line, every peer `neighbour = true`
  (overlay_lab.build_route_line, as scenarios/test_routing.py): a learns a route to
  c's key through b by the Babel route exchange, and loses it as soon as b retracts it.
- gossip: a client that knows one tidewire node learns a provider's signed record from
  it, with no DHT anywhere (build_gossip_line, as test_gossip.py).
- dht: a provider publishes its record on a Mainline DHT swarm of tidewire and
  libtorrent nodes; a node that knows one bootstrap address and a region finds it
  (build_dht_swarm, as test_discovery.py).
"""

from typing import Any

from common import check_provider_record, overlay_route, wait_for_providers
from lab import Lab, Node
from overlay_lab import build_dht_swarm, build_gossip_line, build_route_line

from demo.narrate import DemoFailure, Stopwatch, expect, say, step

OURS, LIBTORRENT = 27, 3


def routing() -> None:
    step("overlay routing: a ---- b ---- c, Babel route exchange over the control channel")
    with Lab("demo-routes") as lab:
        x = build_route_line(lab)
        took = Stopwatch()
        say("a and c each know only b; every peer is a neighbour (`neighbour = true`)")
        route = lab.wait_for(lambda: overlay_route(x.na, x.pc), timeout=40, what="a's route to c")
        expect(route["next_hop"] == x.pb, "a's route to c goes through b")
        direct = overlay_route(x.na, x.pb)
        expect(direct is not None and direct["metric"] < route["metric"], "b is nearer than c")
        assert direct is not None
        say(
            f"a learned a route to c's key through b in {took():.1f} s:"
            f" metric {route['metric']} (b alone: {direct['metric']}), seqno {route['seqno']}"
        )
        back = lab.wait_for(lambda: overlay_route(x.nc, x.pa), timeout=20, what="c's route to a")
        expect(back["next_hop"] == x.pb, "c's route to a goes through b")
        say(f"c learned a's key through b as well: metric {back['metric']}")
        x.nb.cli("peer", "remove", "twb", x.pc)
        took.reset()
        lab.wait_for(
            lambda: overlay_route(x.na, x.pc) is None, timeout=10, what="a to lose c", interval=0.05
        )
        say(f"b removed c: its retraction reached a in {took():.1f} s (no wait for expiry)")
        expect(overlay_route(x.na, x.pb) is not None, "a keeps its route to b")


def gossip() -> None:
    step("discovery by gossip: client ---- middle ---- provider, no DHT anywhere")
    with Lab("demo-gossip") as lab:
        x = build_gossip_line(lab)
        say("the client knows only the middle node (`[discovery] bootstrap`)")
        p, took = _found(lab, x.cli, x.provider_key, x.provider_pub, source="gossip", timeout=30)
        say(f"the client learned the provider's record by gossip in {took:.1f} s")
        say(_record(p))


def dht() -> None:
    step(f"discovery on the DHT: a Mainline swarm of {OURS + LIBTORRENT} nodes, no server")
    with Lab("demo-dht") as lab:
        took = Stopwatch()
        x = build_dht_swarm(lab, ours=OURS, libtorrent=LIBTORRENT)
        say(
            f"{OURS} tidewire and {LIBTORRENT} libtorrent DHT nodes up in {took():.1f} s;"
            " the provider publishes its signed record (BEP 44)"
        )
        p, found = _found(lab, x.seek, x.provider_key, x.provider_pub, source="dht", timeout=90)
        say(f"a seeker that knew one bootstrap address and the region found it in {found:.1f} s")
        say(_record(p))


def _found(
    lab: Lab, node: Node, key: str, pub: str, *, source: str, timeout: float
) -> tuple[dict[str, Any], float]:
    """Wait until `node` knows the provider's record from `source`; check it; the record and
    how long it took."""
    [p], took = wait_for_providers(
        lab, node, timeout=timeout, what=f"{node.name} to learn the provider's record"
    )
    try:
        check_provider_record(p, private_key=key, public_key=pub, source=source)
    except AssertionError as exc:
        raise DemoFailure(
            f"{node.name} holds the provider's record as signed, from {source}"
        ) from exc
    return p, took


def _record(p: dict[str, Any]) -> str:
    return (
        f"record: {'/'.join(p['roles'])} at {', '.join(p['endpoints'])},"
        f" {p['capacity'] / 1e6:.0f} Mbit/s for {p['clients']} clients, region {p['region']},"
        " signature checked"
    )
