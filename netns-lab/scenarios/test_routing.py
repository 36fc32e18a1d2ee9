"""Overlay route exchange between three native nodes in a line:

[a] 192.168.243.1 ---- [b] 192.168.243.2 / 192.168.244.2 ---- 192.168.244.3 [c]

a and c each know b's endpoint; b knows neither's (it learns them from their
handshakes). Every peer is flagged `neighbour = true`: a learns a route to c's key
through b, by Babel updates on the control channel, and `tidewire status --json`
shows it with its metric, seqno and feasibility distance. When b removes c as a
peer, its retraction reaches a well before any route would expire.
"""

from common import overlay_route
from lab import Lab
from overlay_lab import build_route_line


def test_a_learns_c_through_b() -> None:
    with Lab("routes") as lab:
        x = build_route_line(lab)
        na, nc, pa, pb, pc = x.na, x.nc, x.pa, x.pb, x.pc
        route = lab.wait_for(lambda: overlay_route(na, pc), timeout=40, what="a's route to c")
        assert route["next_hop"] == pb and route["router_id"] == pc
        assert 2 * 256 <= route["metric"] < 0xFFFF  # two lossless hops at least
        # a's only neighbour is the next hop, which hears infinity (poison reverse): a never
        # advertised a finite route to c, so it holds no feasibility distance for it
        assert route["feasibility_distance"] is None
        back = lab.wait_for(lambda: overlay_route(nc, pa), timeout=20, what="c's route to a")
        assert back["next_hop"] == pb
        direct = overlay_route(na, pb)
        assert direct is not None and direct["next_hop"] == pb
        assert direct["metric"] < route["metric"]

        # b drops c as a peer: b retracts its route, and a loses c at once (no expiry wait)
        x.nb.cli("peer", "remove", "twb", pc)
        lab.wait_for(
            lambda: overlay_route(na, pc) is None, timeout=10, what="a to lose its route to c"
        )
        assert overlay_route(na, pb) is not None
