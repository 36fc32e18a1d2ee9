"""Live path switching (node/core/paths): a native client with two candidate paths to a
provider that listens on both, through a censor that blocks one at run time.

    [client] 198.51.100.2 ---- [censor] ---- 198.51.102.2 [provider]
      endpoints = [udp://...:51820,                       listen = [udp://0.0.0.0:51820,
                   masked://...:8443]                               masked://0.0.0.0:8443]

A ping every 100 ms runs through the tunnel. When the censor drops UDP to port 51820 the
client fails over to the masked path: the longest gap between replies is at most 3 s,
the provider answers no new handshake, and both sides' status shows the switch. A
restart on the same network starts with the remembered winner (masked). When the block
lifts the client is back on udp within the re-probe interval.
"""

import itertools
import json
import re
from typing import Any

from lab import Lab, Node, Proc
from topologies import build_censored_pair

PROVIDER, TUNNEL = "198.51.102.2", "10.99.0.1"
REPROBE = 8.0 + 3 * 1.0 + 2.0  # REPROBE_MAX, SWITCH_BACK_STREAK probes 1 s apart, slack


def active(node: Node) -> str | None:
    path = node.status()["peers"][0].get("active")
    return None if path is None else str(path["transport"])


def replies(proc: Proc) -> list[float]:
    """The wall-clock times of the ping replies (ping -D prints them)."""
    return [float(m) for m in re.findall(r"^\[(\d+\.\d+)\] \d+ bytes from", proc.log(), re.M)]


def longest_gap(times: list[float], start: float, end: float) -> float:
    marks = [start, *[t for t in times if start <= t <= end], end]
    return max(b - a for a, b in itertools.pairwise(marks))


def now(lab: Lab, node: Node) -> float:
    return float(node.host.run("date +%s.%N").stdout)


def test_the_client_fails_over_and_back_without_a_new_handshake() -> None:
    with Lab("paths") as lab:
        x = build_censored_pair(
            lab,
            endpoint=[f"udp://{PROVIDER}:51820", f"masked://{PROVIDER}:8443"],
            listen=["udp://0.0.0.0:51820", "masked://0.0.0.0:8443"],
        )
        client, censor, client_node, provider_node = (
            x.client,
            x.censor,
            x.client_node,
            x.provider_node,
        )
        client_conf = client_node.config.read_text()
        pinger = client.spawn(["ping", "-D", "-n", "-i", "0.1", "-W", "1", TUNNEL], name="ping")
        lab.wait_for(lambda: len(replies(pinger)) >= 20, timeout=15, what="pings through udp")
        assert active(client_node) == "udp"
        handshakes = provider_node.status()["counters"].get("responses_sent", 0)
        assert handshakes >= 1

        # (1) block the active path: fail over to masked within 3 s, no new handshake
        blocked_at = now(lab, client_node)
        censor.block_udp_port(51820, True)
        lab.wait_for(lambda: active(client_node) == "masked", timeout=5, what="the failover")
        lab.wait_for(
            lambda: len([t for t in replies(pinger) if t > blocked_at]) >= 30,
            timeout=10,
            what="pings through masked",
        )
        gap = longest_gap(replies(pinger), blocked_at, now(lab, client_node))
        print(f"longest ping gap at the block: {gap:.2f} s")
        assert gap <= 3.0, (gap, client_node.status())
        assert censor.dropped("blocked") > 0
        assert provider_node.status()["counters"].get("responses_sent", 0) == handshakes
        peer = client_node.status()["peers"][0]
        assert peer["switches"] >= 1 and peer["endpoint"] == f"masked://{PROVIDER}:8443"
        states = {c["transport"]: c for c in peer["candidates"]}
        assert states["udp"]["state"] == "down" and states["masked"]["state"] == "up"
        assert states["masked"]["rtt_ms"] is not None
        prov_peer = provider_node.status()["peers"][0]
        assert prov_peer["active"]["transport"] == "masked" and prov_peer["role"] == "follower"
        metrics = client_node.cli("metrics").stdout
        assert 'tidewire_path_events_total{event="switches_to_masked"}' in metrics

        # (2) a restart on the same network starts with the winner it remembered
        remembered = json.loads((lab.tmp / "state" / "twcli" / "paths.json").read_text())
        assert [f"masked://{PROVIDER}:8443"] == [v for n in remembered.values() for v in n.values()]
        client_node.cli("down")
        lab.wait_for(lambda: not client_node.proc.alive(), timeout=10, what="the client to stop")
        client_node = lab.tidewire(client, "twcli", client_conf, conf_name="twcli2.toml")
        restarted = now(lab, client_node)
        lab.wait_for(lambda: active(client_node) == "masked", timeout=5, what="masked at start")
        lab.wait_for(
            lambda: len([t for t in replies(pinger) if t > restarted]) >= 10,
            timeout=10,
            what="pings after the restart",
        )
        sent: dict[str, Any] = client_node.status()["counters"]
        assert sent.get("initiations_raced", 0) == 0  # the first initiation went on masked
        assert "the path that won" in client_node.proc.log()

        # (3) the block lifts: back on udp within the re-probe interval, same session
        handshakes = provider_node.status()["counters"].get("responses_sent", 0)
        lifted = now(lab, client_node)
        censor.block_udp_port(51820, False)
        lab.wait_for(lambda: active(client_node) == "udp", timeout=REPROBE, what="back on udp")
        print(f"back on udp {now(lab, client_node) - lifted:.1f} s after the block lifted")
        lab.wait_for(
            lambda: provider_node.status()["peers"][0]["active"]["transport"] == "udp",
            timeout=3,
            what="the provider to follow",
        )
        assert provider_node.status()["counters"].get("responses_sent", 0) == handshakes
        pinger.popen.terminate()
