"""Benchmark: latency under load through a provider sharing its uplink, in one run:
with `[share]`, without it, and without it behind the kernel's tbf shaper at the same
rate with 100 ms of buffer (a cable modem, or a hand-made `tc` rule) in front of the
provider. netns-lab/share_lab.py: two clients pulling 4 TCP streams each, a ping every
50 ms. Prints each client's goodput, the rate on the wire, the ping's added latency
(median, 95th percentile) and its DSLReports-style grade.

    sudo flock /tmp/tidewire-lab.lock .venv/bin/python netns-lab/bench_share.py [--seconds 15]
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "scenarios"))

from lab import Lab
from share_lab import build, measure


def grade(added_ms: float) -> str:
    """DSLReports' bufferbloat grade of the added latency under load."""
    for limit, g in ((5, "A+"), (30, "A"), (60, "B"), (200, "C"), (400, "D")):
        if added_ms < limit:
            return g
    return "F"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--rate", default="40 Mbit/s")
    args = ap.parse_args()
    out = {}
    mbit = float(args.rate.split()[0])
    cases = (
        ("share", {"download": args.rate}, False),
        ("no_share", None, False),
        ("no_share_tbf", None, True),
    )
    for label, share, tbf in cases:
        with Lab("bshare") as lab:
            x = build(lab, share)
            if tbf:  # the bottleneck an operator gets without [share]: a shaper with a buffer
                x.internet.run(
                    f"tc qdisc add dev eth0 root tbf rate {mbit}mbit burst 32kb latency 100ms"
                )
            run = measure(lab, x, seconds=args.seconds)
        out[label] = {
            "goodput_mbps": {k: round(v, 1) for k, v in run.mbps.items()},
            "wire_mbps": round(run.wire_mbps, 1),
            "idle_ms": run.idle_ms,
            "added_median_ms": round(run.added_median, 2),
            "added_p95_ms": round(run.added_p95, 2),
            "grade": grade(run.added_p95),
        }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
