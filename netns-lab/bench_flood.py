"""Benchmark: an established tidewire pair under a flood of valid-mac2 handshake initiations.

    [a] tidewire 192.168.241.1 ---- 192.168.241.2 [b] tidewire 192.168.243.1 ---- [m]
                                         192.168.243.3 attacker, 192.168.243.2 late peer [c]

iperf3 TCP from a to b through the tunnel for SECONDS with no flood, then while one
attacker (tools/hostile.py flood-mac2: it decrypts its cookie reply, as any client can,
and puts a valid mac2 on every initiation) floods b at 10k a second, then as fast as one
process can send. During the fastest flood a new peer [c] starts and the time until its
first ping through the tunnel answers is measured. Prints JSON: throughput and its ratio
to the unflooded run, flood rates, and b's refusal counters.

    sudo flock /tmp/tidewire-lab.lock .venv/bin/python netns-lab/bench_flood.py [--seconds 20]
"""

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "scenarios"))

from lab import Host, Lab, Node, Proc
from topologies import build_flood_lab

HOSTILE = str(Path(__file__).resolve().parent / "tools" / "hostile.py")


def iperf_mbps(client: Host, addr: str, seconds: int) -> float:
    out = client.run(["iperf3", "-c", addr, "-t", str(seconds), "-J"], timeout=seconds + 60)
    end = json.loads(out.stdout)["end"]
    return float(end["sum_received"]["bits_per_second"]) / 1e6


def snapshot(node: Node) -> dict[str, int]:
    """Every drop and counter of the node, flattened."""
    st = node.status()
    return {k: int(v) for k, v in {**st["drops"], **st["counters"]}.items()}


def engaged(flood: Proc) -> bool:
    """The flood has its cookie (or gave up getting one) and is sending."""
    return "flooding" in flood.log()


def start_flood(m: Host, pb: str, rate: int, seconds: int) -> Proc:
    cmd = [sys.executable, HOSTILE, "flood-mac2", "192.168.243.1", "51821", pb, str(rate)]
    return m.spawn([*cmd, str(seconds), "192.168.243.3"], name=f"flood-{rate}")


def flood_result(lab: Lab, flood: Proc) -> dict[str, float]:
    lab.wait_for(lambda: flood.popen.poll() is not None, timeout=60, what="the flood to end")
    words = flood.log().split()
    return {"flood_sent": int(words[-1]), "flood_per_s": float(words[-4])}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=20, help="iperf3 duration per phase")
    seconds = ap.parse_args().seconds
    result: dict[str, Any] = {}
    with Lab("bflood") as lab:
        x = build_flood_lab(lab)
        a, b, m, nb, pb = x.a, x.b, x.m, x.nb, x.pb
        lab.wait_for(
            lambda: a.run("ping -c 1 -W 1 10.77.0.2", check=False).returncode == 0,
            timeout=30,
            what="the tunnel",
        )
        server = b.spawn(["iperf3", "-s", "--forceflush"], name="iperf3")
        lab.wait_for(lambda: "listening" in server.log(), timeout=10, what="iperf3 server")

        result["mbps_no_flood"] = iperf_mbps(a, "10.77.0.2", seconds)
        for label, rate in (("10k", 10_000), ("full", 0)):
            before = snapshot(nb)
            flood = start_flood(m, pb, rate, seconds + 8)
            lab.wait_for(
                lambda f=flood: engaged(f),  # type: ignore[misc]
                timeout=30,
                what="the flood to start",
            )
            phase_mac2 = "with mac2" in flood.log()
            time.sleep(1.0)
            phase: dict[str, Any] = {}
            if label == "full":
                t0 = time.monotonic()
                lab.tidewire(m, "twc", x.late_peer)
                mbps = iperf_with_late_peer(lab, a, m, seconds, phase, t0)
            else:
                mbps = iperf_mbps(a, "10.77.0.2", seconds)
            after = snapshot(nb)
            phase.update(flood_result(lab, flood))
            phase["flood_had_mac2"] = phase_mac2
            phase["mbps"] = mbps
            phase["throughput_ratio"] = mbps / result["mbps_no_flood"]
            phase["b"] = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k)}
            result[f"flood_{label}"] = phase
    print(json.dumps(result, indent=2))


def iperf_with_late_peer(
    lab: Lab, a: Host, m: Host, seconds: int, phase: dict[str, Any], t0: float
) -> float:
    """iperf3 in the background while the late peer pings until it gets through."""
    client = a.spawn(["iperf3", "-c", "10.77.0.2", "-t", str(seconds), "-J"], name="iperf3-c")
    deadline = t0 + seconds + 30
    phase["late_peer_s"] = None
    while time.monotonic() < deadline:
        if m.run("ping -c 1 -W 1 10.77.0.2", check=False).returncode == 0:
            phase["late_peer_s"] = round(time.monotonic() - t0, 2)
            break
    lab.wait_for(lambda: client.popen.poll() is not None, timeout=seconds + 60, what="iperf3")
    log = client.log()
    end = json.loads(log[log.index("{") :])["end"]
    return float(end["sum_received"]["bits_per_second"]) / 1e6


if __name__ == "__main__":
    main()
