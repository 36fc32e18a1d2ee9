"""NAT traversal through a mediator (netns-lab/nat.py has the diagram and the NATs).

m is on the public side; a and b each sit behind a NAT of their own, know m's
endpoint, and list each other as native peers with no endpoint. m lists both (it
learns their endpoints from their handshakes). Behind full-cone NATs they look each
other up at m, m introduces them, both punch, and a's pings to b's tunnel address go
over the direct path: a's and b's status show each other's public NAT address as the
active path, and m's byte counters for a and b barely move while the pings flow.
Behind symmetric NATs every punch fails: the failures are counted and the lookups
retried with a growing backoff, and m, a relay there (`[relay] enabled`), carries a's
traffic to b: a and b list each other with the one endpoint relay://M, are still
punch targets (no direct endpoint), and stay on the relayed path, ping and a small
TCP transfer going end to end through m.
Behind full-cone NATs with m a relay and a firewall on the way dropping everything
between the two NATs at first, a and b start relayed and their punches fail; once the
firewall lets them through, a retry (on its backoff) punches, and the direct path takes
over from the relay under a running ping: no answer is lost, and m relays nothing more.
"""

import itertools
import re
import time
from typing import Any

from common import transfer
from lab import Lab, Node, genkey, tidewire_toml
from nat import CONE_PORT, PORT, NatLab, build_nat_lab, check
from test_paths import longest_gap, replies
from test_relay import b64url

TUNNEL = {"m": "10.77.0.1", "a": "10.77.0.2", "b": "10.77.0.3"}


def _nodes(lab: Lab, net: NatLab, *, relay: bool = False) -> dict[str, Node]:
    """m, a and b; with `relay`, m forwards relay frames and a and b reach each other
    through it (relay://M) until a punched path answers."""
    keys = {name: genkey() for name in TUNNEL}

    def peer(name: str, endpoint: str | None = None) -> dict[str, Any]:
        p: dict[str, Any] = {"public_key": keys[name][1], "allowed_ips": [TUNNEL[name] + "/32"]}
        if endpoint:
            p["endpoints" if endpoint.startswith("relay:") else "endpoint"] = (
                [endpoint] if endpoint.startswith("relay:") else endpoint
            )
        return p

    m_end = f"203.0.113.2:{PORT}"
    via_m = f"relay://{b64url(keys['m'][1])}" if relay else None
    layout = {
        "m": (net.m, [peer("a"), peer("b")]),
        "a": (net.a, [peer("m", m_end), peer("b", via_m)]),
        "b": (net.b, [peer("m", m_end), peer("a", via_m)]),
    }
    nodes = {}
    for name, (host, peers) in layout.items():
        text = tidewire_toml(
            name=f"tw{name}",
            private_key=keys[name][0],
            address=[TUNNEL[name] + "/24"],
            lab=lab,
            listen_port=PORT,
            peers=peers,
        )
        if relay and name == "m":
            text += "\n[relay]\nenabled = true\n"
        nodes[name] = lab.tidewire(host, f"tw{name}", text)
    return nodes


def _peer(node: Node, other: Node) -> dict[str, Any]:
    key = other.status()["public_key"]
    return next(p for p in node.status()["peers"] if p["public_key"] == key)


def _nat_counter(node: Node, name: str) -> float:
    return float(node.status()["nat"]["counters"].get(name, 0))


def _ping(node: Node, addr: str, *, count: int = 1, size: int = 56) -> bool:
    out = node.host.run(
        ["ping", "-c", str(count), "-i", "0.2", "-s", str(size), "-W", "1", addr], check=False
    )
    return out.returncode == 0


def test_full_cone_nats_punch_through_and_traffic_skips_the_mediator() -> None:
    with Lab("natcone") as lab:
        net = build_nat_lab(lab, "cone")
        seen = check(lab, net)
        public_a = f"198.51.100.2:{CONE_PORT['nata']}"
        assert seen["to_m"] == seen["to_inet"] == public_a, seen  # endpoint-independent mapping
        assert seen["unsolicited_in"], seen  # and filtering
        started = time.monotonic()
        nodes = _nodes(lab, net)
        na, nb, nm = nodes["a"], nodes["b"], nodes["m"]
        public_b = f"192.0.2.2:{CONE_PORT['natb']}"
        lab.wait_for(
            lambda: (
                (_peer(na, nb).get("active") or {}).get("endpoint") == public_b
                and _peer(nb, na).get("active", {}).get("endpoint") == public_a
            ),
            timeout=30,
            what="a and b on each other's public NAT address",
        )
        print(f"direct path {time.monotonic() - started:.1f} s after the nodes started")
        assert na.status()["nat"]["behind_nat"] and nb.status()["nat"]["behind_nat"]
        assert _peer(na, nm)["persistent_keepalive"] == 25  # automatic behind the NAT
        assert _nat_counter(na, "punches_succeeded") + _nat_counter(nb, "punches_succeeded") >= 1
        assert _nat_counter(nm, "introductions") >= 1
        before = {
            n: _peer(nm, nodes[n])["rx_bytes"] + _peer(nm, nodes[n])["tx_bytes"] for n in "ab"
        }
        assert _ping(na, TUNNEL["b"], count=20, size=1000), lab.logs()
        after = {n: _peer(nm, nodes[n])["rx_bytes"] + _peer(nm, nodes[n])["tx_bytes"] for n in "ab"}
        moved = {n: after[n] - before[n] for n in "ab"}
        print(f"m's bytes for a and b during 20 x 1000-byte pings: {moved}")
        assert all(v < 1000 for v in moved.values()), moved  # not one ping: keepalives only
        assert _peer(na, nb)["active"]["endpoint"] == public_b


BLOCK = """table ip labblock {
    chain forward {
        type filter hook forward priority filter - 10; policy accept;
        ip saddr 198.51.100.2 ip daddr 192.0.2.2 drop
        ip saddr 192.0.2.2 ip daddr 198.51.100.2 drop
    }
}
"""


def test_the_direct_path_takes_over_from_the_relay_once_a_punch_gets_through() -> None:
    with Lab("nattakeover") as lab:
        net = build_nat_lab(lab, "cone")
        net.inet.run(["nft", "-f", "-"], input=BLOCK)  # the NATs cannot reach each other
        nodes = _nodes(lab, net, relay=True)
        na, nb, nm = nodes["a"], nodes["b"], nodes["m"]
        public_b = f"192.0.2.2:{CONE_PORT['natb']}"
        lab.wait_for(
            lambda: _ping(na, TUNNEL["b"]), timeout=30, what="a to ping b through the relay m"
        )
        lab.wait_for(
            lambda: _nat_counter(na, "punches_failed") >= 2,
            timeout=30,
            what="two failed punches from a",
            interval=0.25,
        )
        assert _peer(na, nb)["active"]["transport"] == "relay"
        [pair] = nm.status()["relay"]["pairs"]
        assert pair["frames"] > 0, pair
        pinger = net.a.spawn(["ping", "-n", "-D", "-i", "0.1", "-W", "1", TUNNEL["b"]], name="ping")
        try:
            time.sleep(2.0)
            opened = time.time()
            net.inet.run("nft delete table ip labblock")  # the firewall lets them through
            lab.wait_for(
                lambda: (
                    (_peer(na, nb).get("active") or {}).get("endpoint") == public_b
                    and (_peer(nb, na).get("active") or {}).get("transport") == "udp"
                ),
                timeout=90,  # the next retry comes within the backoff (60 s at most)
                what="a and b to switch to the direct path",
                interval=0.25,
            )
            took = time.time() - opened
            relayed = nm.status()["relay"]["pairs"][0]["frames"]
            time.sleep(3.0)  # 30 pings on the direct path
            [after] = nm.status()["relay"]["pairs"]
        finally:
            pinger.popen.terminate()
            pinger.popen.wait(timeout=10)
        times = replies(pinger)
        sent = [int(n) for n in re.findall(r"icmp_seq=(\d+)", pinger.log())]
        gap = longest_gap(times, opened, times[-1])
        print(
            f"direct path {took:.1f} s after the firewall opened; the longest ping gap "
            f"{gap:.2f} s; m relayed {after['frames'] - relayed} frames after the switch"
        )
        assert gap < 1.0, pinger.log()  # the switch lost no ping (0.1 s apart, -W 1)
        assert len(set(sent)) == len(sent), pinger.log()  # none came twice
        # the traffic left the relay: 30 pings passed, and at most probes of the standby path
        assert after["frames"] - relayed < 10, after
        assert _nat_counter(na, "punches_succeeded") + _nat_counter(nb, "punches_succeeded") >= 1
        assert _ping(nb, TUNNEL["a"], count=3)


def test_symmetric_nats_fail_to_punch_stay_relayed_and_retry_with_backoff() -> None:
    with Lab("natsym") as lab:
        net = build_nat_lab(lab, "symmetric")
        seen = check(lab, net)
        assert seen["to_m"] != seen["to_inet"], seen  # a new mapping per destination
        assert not seen["unsolicited_in"], seen  # and only that destination may answer
        nodes = _nodes(lab, net, relay=True)
        na, nb, nm = nodes["a"], nodes["b"], nodes["m"]
        failures: list[float] = []  # when a's count of failed punches went up

        def failed() -> bool:
            n = _nat_counter(na, "punches_failed")
            while len(failures) < n:
                failures.append(time.monotonic())
            return n >= 5

        # the relayed path works from the start, while the punches fail
        lab.wait_for(
            lambda: _ping(na, TUNNEL["b"]), timeout=30, what="a to ping b through the relay m"
        )
        assert _ping(na, TUNNEL["b"], count=5, size=1000), lab.logs()
        transfer(lab, net.a, net.b, TUNNEL["b"], 1_000_000, timeout=30)
        lab.wait_for(failed, timeout=90, what="five failed punches from a", interval=0.25)
        gaps = [round(y - x, 1) for x, y in itertools.pairwise(failures)]
        print(f"seconds between a's failed punches: {gaps}")
        assert gaps[-1] >= 2 * gaps[0], gaps  # the retries back off
        target = next(
            t for t in na.status()["nat"]["targets"] if t["peer"] == nb.status()["public_key"]
        )
        assert not target["direct"] and target["backoff"] >= 4, target
        assert target["punched"], target  # b's public mappings were tried, and failed
        assert _nat_counter(nm, "introductions") >= 3
        assert _nat_counter(na, "punches_succeeded") == 0
        assert na.status()["nat"]["behind_nat"]
        # still relayed, and still working, after the failed punches
        assert _peer(na, nb)["active"]["transport"] == "relay"
        assert _peer(nb, na)["active"]["transport"] == "relay"
        assert _ping(na, TUNNEL["b"], count=3) and _ping(nb, TUNNEL["a"], count=3)
        [pair] = nm.status()["relay"]["pairs"]
        assert pair["bytes"] > 1_000_000 and not pair["drops"], pair  # the transfer crossed m
        print(f"m relayed {pair['frames']} frames, {pair['bytes']} bytes for a and b")
