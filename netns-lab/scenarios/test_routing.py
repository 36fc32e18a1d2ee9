"""Overlay route exchange between three native nodes in a line:

[a] 192.168.243.1 ---- [b] 192.168.243.2 / 192.168.244.2 ---- 192.168.244.3 [c]

a and c each know b's endpoint; b knows neither's (it learns them from their
handshakes). Every peer is flagged `neighbour = true`: a learns a route to c's key
through b, by Babel updates on the control channel, and `tidewire status --json`
shows it with its metric, seqno and feasibility distance. When b removes c as a
peer, its retraction reaches a well before any route would expire.
"""

from typing import Any

from lab import Lab, genkey, tidewire_toml


def _route(node: Any, dest: str) -> dict[str, Any] | None:
    for r in node.status()["routes"]:
        if r["destination"] == dest and r["next_hop"] is not None:
            return r  # type: ignore[no-any-return]
    return None


def test_a_learns_c_through_b() -> None:
    with Lab("routes") as lab:
        a, b, c = lab.host("a"), lab.host("b"), lab.host("c")
        lab.link(a, b, ["192.168.243.1/24"], ["192.168.243.2/24"])
        lab.link(b, c, ["192.168.244.2/24"], ["192.168.244.3/24"])
        (ka, pa), (kb, pb), (kc, pc) = genkey(), genkey(), genkey()

        def peer(key: str, tunnel: str, endpoint: str | None = None) -> dict[str, Any]:
            p: dict[str, Any] = {"public_key": key, "allowed_ips": [tunnel], "neighbour": True}
            if endpoint:
                p["endpoint"] = endpoint
            return p

        configs = {
            "twa": (
                a,
                ka,
                "10.78.0.1/24",
                51820,
                [peer(pb, "10.78.0.2/32", "192.168.243.2:51821")],
            ),
            "twb": (
                b,
                kb,
                "10.78.0.2/24",
                51821,
                [peer(pa, "10.78.0.1/32"), peer(pc, "10.78.0.3/32")],
            ),
            "twc": (
                c,
                kc,
                "10.78.0.3/24",
                51822,
                [peer(pb, "10.78.0.2/32", "192.168.244.2:51821")],
            ),
        }
        nodes = {}
        for name, (host, key, addr, port, peers) in configs.items():
            text = tidewire_toml(
                name=name, private_key=key, address=[addr], lab=lab, listen_port=port, peers=peers
            )
            nodes[name] = lab.tidewire(host, name, text)
        na, nc = nodes["twa"], nodes["twc"]
        route = lab.wait_for(lambda: _route(na, pc), timeout=40, what="a's route to c")
        assert route["next_hop"] == pb and route["router_id"] == pc
        assert 2 * 256 <= route["metric"] < 0xFFFF  # two lossless hops at least
        # a's only neighbour is the next hop, which hears infinity (poison reverse): a never
        # advertised a finite route to c, so it holds no feasibility distance for it
        assert route["feasibility_distance"] is None
        back = lab.wait_for(lambda: _route(nc, pa), timeout=20, what="c's route to a")
        assert back["next_hop"] == pb
        direct = _route(na, pb)
        assert direct is not None and direct["next_hop"] == pb
        assert direct["metric"] < route["metric"]

        # b drops c as a peer: b retracts its route, and a loses c at once (no expiry wait)
        nodes["twb"].cli("peer", "remove", "twb", pc)
        lab.wait_for(lambda: _route(na, pc) is None, timeout=10, what="a to lose its route to c")
        assert _route(na, pb) is not None
