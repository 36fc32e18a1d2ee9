"""Benchmark: latency under load through a provider sharing its uplink, in one run:
tidewire with `[share]`, tidewire without it, and Debian's wireguard-go as the provider
behind the kernel's tbf shaper at the same rate with 100 ms of buffer (a cable modem,
or a hand-made `tc` rule) in front of it; tidewire without `[share]` behind the same
tbf too, which shows what the provider's software changes there (nothing, or little).
netns-lab/share_lab.py: two clients pulling 4 TCP streams each, a ping every 50 ms.
Prints each client's goodput, the rate on the wire, the ping's added latency (median,
95th percentile) and its DSLReports-style grade, with the load average before each case
(the host is shared: a busy one delays every user-space queue's timer). `--nice -10`
runs the provider's processes at that niceness, to see whether the grade follows the CPU.

    sudo flock /tmp/tidewire-lab.lock .venv/bin/python netns-lab/bench_share.py [--seconds 15]
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "scenarios"))

from lab import Lab
from share_lab import ShareHosts, ShareRun, build, build_wireguard_go_provider, measure


def grade(added_ms: float) -> str:
    """DSLReports' bufferbloat grade of the added latency under load."""
    for limit, g in ((5, "A+"), (30, "A"), (60, "B"), (200, "C"), (400, "D")):
        if added_ms < limit:
            return g
    return "F"


CASES = ("share", "no_share", "wireguard_go_tbf", "no_share_tbf")


def case(label: str, rate: str, *, seconds: int, nice: int | None = None) -> ShareRun:
    with Lab("bshare") as lab:
        x: ShareHosts
        if label == "wireguard_go_tbf":
            x = build_wireguard_go_provider(lab)
        else:
            x = build(lab, {"download": rate} if label == "share" else None)
        if nice is not None:  # every process in the provider's namespace: its tunnel's
            for pid in subprocess.run(
                ["ip", "netns", "pids", x.provider.netns], capture_output=True, text=True
            ).stdout.split():
                os.setpriority(os.PRIO_PROCESS, int(pid), nice)
        if label.endswith("_tbf"):  # the bottleneck an operator gets: a shaper with a buffer
            tbf = f"tbf rate {float(rate.split()[0])}mbit burst 32kb latency 100ms"
            x.internet.run(f"tc qdisc add dev eth0 root {tbf}")
        return measure(lab, x, seconds=seconds)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--rate", default="40 Mbit/s")
    ap.add_argument("--only", nargs="+", choices=CASES, default=CASES)
    ap.add_argument(
        "--nice", type=int, help="the provider's niceness (does the grade follow the CPU?)"
    )
    args = ap.parse_args()
    out: dict[str, dict[str, object]] = {}
    for label in args.only:
        load = os.getloadavg()[0]
        try:
            run = case(label, args.rate, seconds=args.seconds, nice=args.nice)
        except Exception as exc:  # the lab printed its logs; the other cases still run
            out[label] = {"load": round(load, 2), "error": f"{type(exc).__name__}: {exc}"}
            continue
        out[label] = {
            "load": round(load, 2),
            "nice": args.nice,
            "goodput_mbps": {k: round(v, 1) for k, v in run.mbps.items()},
            "wire_mbps": round(run.wire_mbps, 1),
            "idle_ms": run.idle_ms,
            "added_median_ms": round(run.added_median, 2),
            "added_p95_ms": round(run.added_p95, 2),
            "grade": grade(run.added_p95),
        }
        print(f"{label}: {json.dumps(out[label])}", file=sys.stderr, flush=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
