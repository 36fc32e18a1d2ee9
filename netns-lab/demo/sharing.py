"""Congestion control: a provider sharing 40 Mbit/s of its uplink (`[share] download`)
between two clients, a tidewire one and a stock wireguard-go one, each pulling 4 TCP
streams from the internet host while a ping runs (share_lab.measure, as
scenarios/test_share.py and bench_share.py). It prints each client's goodput, the rate
on the wire and the ping's added latency; then the same load without `[share]` behind
an ordinary shaper with 100 ms of buffer (bench_share's baseline), where the latency
is what an operator would otherwise get."""

from bench_share import grade
from lab import Lab
from share_lab import ShareRun, build, measure

from demo.narrate import expect, say, step

RATE = 40.0  # Mbit/s
SECONDS = 10
FAIR = 0.15  # each client within 15% of an even half
ADDED = 10.0  # ms: the most the median ping may gain under load with [share]


def run() -> None:
    step(f"congestion control: two clients share {RATE:.0f} Mbit/s of a provider's uplink")
    with Lab("demo-share") as lab:
        x = build(lab, {"download": f"{RATE:.0f} Mbit/s"})
        say("tidewire client and wireguard-go client pull 4 TCP streams each; a ping every 50 ms")
        shared = measure(lab, x, seconds=SECONDS)
        tw, wg = shared.mbps["tidewire"], shared.mbps["wireguard-go"]
        say(
            f"with [share]: {tw:.1f} and {wg:.1f} Mbit/s (tidewire, wireguard-go),"
            f" {shared.wire_mbps:.1f} Mbit/s on the wire; {_latency(shared)}"
        )
        half = (tw + wg) / 2
        expect(
            all(abs(m - half) <= FAIR * half for m in (tw, wg)), "the two clients get even shares"
        )
        expect(abs(shared.wire_mbps - RATE) <= 0.1 * RATE, f"the provider holds {RATE:.0f} Mbit/s")
        expect(shared.added_median <= ADDED, f"ping gains at most {ADDED:.0f} ms under load")
    with Lab("demo-share-tbf") as lab:
        x = build(lab, None)
        x.internet.run(
            f"tc qdisc add dev eth0 root tbf rate {RATE:.0f}mbit burst 32kb latency 100ms"
        )
        plain = measure(lab, x, seconds=SECONDS)
        say(
            f"without [share], behind a {RATE:.0f} Mbit/s shaper with a 100 ms buffer:"
            f" {plain.mbps['tidewire']:.1f} and {plain.mbps['wireguard-go']:.1f} Mbit/s;"
            f" {_latency(plain)}"
        )


def _latency(run: ShareRun) -> str:
    return (
        f"ping {run.idle_ms:.1f} ms idle, +{run.added_median:.1f} ms under load"
        f" (95th percentile +{run.added_p95:.1f} ms, grade {grade(run.added_p95)})"
    )
