"""Benchmark: a masked listener under a flood of garbage to its masked port.

    [a] 192.168.250.1 ---- veth ---- 192.168.250.2 [b] listens on udp:// and masked://

a dials b on masked:// only; once the tunnel answers, a sends COUNT datagrams of
random bytes (tools/hostile.py garbage: random sizes, well-typed headers with random
bodies, oversized ones) to b's masked port. For each data plane of b: the flood's rate,
b's CPU seconds per datagram (both ends' processes of b), the datagrams b counted as the
skin's opener counts them (`masked_unwrap_failed`, `masked_decoys`), and whether the
tunnel still answers. On the native plane the receive thread drops them itself; on the
Python plane each one costs a call of the skin's opener. Prints one JSON line per plane.

    sudo flock /tmp/tidewire-lab.lock .venv/bin/python netns-lab/bench_maskflood.py [--count 100000]
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "scenarios"))

from bench import cpu_seconds, pids_named
from lab import Lab

HOSTILE = str(Path(__file__).resolve().parent / "tools" / "hostile.py")
LISTEN = ["udp://0.0.0.0:51821", "masked://0.0.0.0:8443"]


def run(plane: str, count: int) -> dict[str, object]:
    with Lab("maskflood") as lab:
        a, b = lab.host("a"), lab.host("b")
        lab.link(a, b, "192.168.250.1/24", "192.168.250.2/24")
        _, nb = lab.tidewire_pair(
            a,
            b,
            endpoint="masked://192.168.250.2:8443",
            tunnel_a=["10.250.0.1/24"],
            tunnel_b=["10.250.0.2/24"],
            names=("mf0", "mf1"),
            args=("--dataplane", plane),
            b_listen=LISTEN,
        )
        lab.wait_for(
            lambda: a.run("ping -c 1 -W 1 10.250.0.2", check=False).returncode == 0,
            timeout=30,
            what="the masked tunnel",
        )
        pids = pids_named(b, ("tidewire",))
        cpu0, t0 = sum(cpu_seconds(p) for p in pids), time.monotonic()
        flood = [sys.executable, HOSTILE, "garbage", "192.168.250.2", "8443", str(count)]
        a.run(flood, timeout=600)
        took = time.monotonic() - t0
        time.sleep(1.0)  # what is still queued in b's socket
        cpu = sum(cpu_seconds(p) for p in pids) - cpu0
        drops = nb.status()["drops"]
        return {
            "plane": plane,
            "sent": count,
            "rate_per_s": round(count / took),
            "cpu_us_per_datagram": round(cpu / count * 1e6, 2),
            "masked_unwrap_failed": drops.get("masked_unwrap_failed", 0),
            "masked_decoys": drops.get("masked_decoys", 0),
            "tunnel_ok": a.run("ping -c 3 -W 1 10.250.0.2", check=False).returncode == 0,
        }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=100_000, help="datagrams in the flood")
    args = parser.parse_args()
    for plane in ("native", "python"):
        print(json.dumps(run(plane, args.count)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
