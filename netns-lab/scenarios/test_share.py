"""Tunnel congestion control on the exit lab: a provider sharing 40 Mbit/s between two
clients (a tidewire client and a stock wireguard-go one, 4 TCP streams each) gives each
half, holds the rate, and keeps a ping's added latency low (netns-lab/share_lab.py)."""

from lab import Lab
from share_lab import build, measure


def test_a_shared_40_mbit_s_is_split_evenly_with_low_latency() -> None:
    with Lab("share") as lab:
        x = build(lab, {"download": "40 Mbit/s"})
        run = measure(lab, x, seconds=15)
        print(f"share 40 Mbit/s: {run}")
        # the rate on the wire (outer headers count against it) is the configured one
        assert abs(run.wire_mbps - 40.0) <= 0.05 * 40.0, run.wire_mbps
        total = sum(run.mbps.values())
        for name, mbps in run.mbps.items():
            assert abs(mbps - total / 2) <= 0.10 * (total / 2), (name, run.mbps)
        assert run.added_median <= 5.0, (run.idle_ms, run.added_median)
        assert run.added_p95 <= 15.0, (run.idle_ms, run.added_p95)
        st = x.provider_node.status()["share"]
        assert st["download"] == 5_000_000 and len(st["clients"]) == 2
