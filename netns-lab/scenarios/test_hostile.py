"""Hostile input at the listening port never stops the node or its other peers.

[a] tidewire 192.168.241.1 ---- 192.168.241.2 [b] tidewire ---- 192.168.243.1
                                                 192.168.243.2 [m] attacker, [c] late peer
"""

import json
import re
import sys
import time
from pathlib import Path

from common import handshaken, ping, transfer
from lab import Lab
from topologies import build_flood_lab

HOSTILE = str(Path(__file__).resolve().parents[1] / "tools" / "hostile.py")


def build(lab: Lab):  # type: ignore[no-untyped-def]
    x = build_flood_lab(lab)
    return x.a, x.b, x.m, x.na, x.nb, x.pb, x.late_peer


def guard_drops(host) -> int:  # type: ignore[no-untyped-def]
    """Handshakes the node's nftables guard dropped before the socket (node/firewall.py)."""
    table = host.run("nft list table inet tidewire_guard_twb", check=False).stdout
    return sum(int(n) for n in re.findall(r"counter packets (\d+)", table))


def test_handshake_flood_is_dropped_before_the_socket_and_traffic_continues() -> None:
    with Lab("flood") as lab:
        a, b, m, na, nb, pb, late_peer = build(lab)
        ping(a, "10.77.0.2")
        flood = m.spawn(
            [sys.executable, HOSTILE, "flood", "192.168.243.1", "51821", pb, "3000", "12"],
            name="flood",
        )
        # one address sends 3000 a second: the kernel guard lets 100 a second through
        lab.wait_for(
            lambda: guard_drops(b) > 1000, timeout=10, what="the guard to drop the flood"
        )
        transfer(lab, a, b, "10.77.0.2", 30 * 1024 * 1024)
        # a peer that first shows up during the flood gets a cookie, retries with mac2, gets in
        nc = lab.tidewire(m, "twc", late_peer)
        lab.wait_for(
            lambda: ping(m, "10.77.0.2", count=1, check=False),
            timeout=20,
            what="a new peer to handshake through the flood",
        )
        lab.wait_for(lambda: flood.popen.poll() is not None, timeout=30, what="the flood to end")
        sent = int(flood.log().split()[-1])
        st = nb.status()
        assert sent > 10_000, f"the flood only sent {sent}"
        # most of the flood never reached the socket; what did was refused by the link (a
        # cookie reply while the source's cookie bucket allows one, else silently) or shed
        refused = st["drops"].get("link_under_load_cookie_sent", 0) + st["drops"].get(
            "link_initiation_cookie_rate_limited", 0
        )
        total = guard_drops(b) + refused + st["drops"].get("handshake_shed", 0)
        assert total > 10_000, (guard_drops(b), st["drops"])
        # the late peer got in (the ping above), with or without a cookie: the reader sheds the
        # flood to 2 handshake messages a batch from its address, so the device may see too few
        # of them to be under load when the late peer's initiation arrives
        assert handshaken(nc)
        assert nb.proc.alive() and handshaken(na)
        print(
            json.dumps({"flood_sent": sent, "b_counters": st["counters"], "b_drops": st["drops"]})
        )


def test_garbage_datagrams_are_dropped_and_counted() -> None:
    with Lab("junk") as lab:
        a, _b, m, _na, nb, _pb, _ = build(lab)
        ping(a, "10.77.0.2")
        pinger = a.spawn(["ping", "-i", "0.05", "-c", "100", "-W", "1", "10.77.0.2"], name="ping")
        out = m.run(
            [sys.executable, HOSTILE, "garbage", "192.168.243.1", "51821", "30000"], timeout=120
        )
        assert int(out.stdout.split()[-1]) == 30000
        lab.wait_for(lambda: pinger.popen.poll() is not None, timeout=30, what="ping to finish")
        received = int(pinger.log().split(" received")[0].split()[-1])
        assert received >= 95, pinger.log()[-300:]
        drops = nb.status()["drops"]
        link_drops = sum(v for k, v in drops.items() if k.startswith("link_"))
        assert link_drops > 20_000, drops
        assert nb.proc.alive()
        # refused datagrams do not keep the node waking itself (node/core/ticker.py): once a
        # second has passed since the last ping, garbage alone adds no tick
        time.sleep(1.5)
        ticks = nb.status()["ticker"]["ticks"]
        m.run([sys.executable, HOSTILE, "garbage", "192.168.243.1", "51821", "5000"], timeout=60)
        time.sleep(0.3)
        assert nb.status()["ticker"]["ticks"] == ticks
        ping(a, "10.77.0.2")
