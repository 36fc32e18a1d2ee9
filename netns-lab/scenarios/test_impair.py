"""The impairment box (middlebox/impair.py, topologies.impaired_link) does what it is set to.

    [a] 10.55.0.1 ---- [impair] ---- 10.55.0.2 [b]

Measured through the box, each against its setting: its own cost with nothing set (ping
RTT), a delay each way (ping RTT never below twice the delay, its median within a
millisecond of it; this machine is shared, so a few late stragglers are let be),
jitter (RTTs spread, no earlier than the delay less the jitter), loss one way (the
share of pings lost over 1,000), a rate (UDP offered at twice the rate received within
5% of it, less the frames' headers; TCP never above it), and a change at run time taking
effect on the next packet.
"""

import json
import re
import statistics

from lab import Host, Lab
from topologies import impaired_link

A, B = "10.55.0.1", "10.55.0.2"


def rtts(host: Host, addr: str, *, count: int, interval: float = 0.01) -> list[float]:
    out = host.run(
        ["ping", "-n", "-c", str(count), "-i", str(interval), "-W", "2", addr],
        check=False,
        timeout=count * interval + 30,
    ).stdout
    return [float(m) for m in re.findall(r"time=([\d.]+) ms", out)]


def test_delay_jitter_loss_and_rate_as_set() -> None:
    with Lab("impair") as lab:
        a, b = lab.host("a"), lab.host("b")
        box = impaired_link(lab, a, b, f"{A}/24", f"{B}/24")

        # nothing set: the box's own cost, a fraction of a millisecond per round trip
        base = rtts(a, B, count=100)
        assert len(base) == 100
        overhead = statistics.median(base)
        print(f"\nimpair box, nothing set: median RTT {overhead:.3f} ms")
        assert overhead < 2.0

        # a delay each way: RTT = twice the delay (plus the box's cost)
        box.set("both", delay=0.020)
        got = rtts(a, B, count=50)
        print(f"delay 20 ms each way: RTT median {statistics.median(got):.2f} ms")
        assert len(got) == 50
        assert min(got) >= 40.0, got  # never early
        assert 40.0 <= statistics.median(got) <= 40.0 + overhead + 1.0, got
        # a busy machine's stragglers: the box is a user-space process, so a host whose two
        # cores are both taken delays some frames (7 of 50 while the unit suite ran beside)
        late = [r for r in got if r > 40.0 + overhead + 3.0]
        assert len(late) <= 10, got

        # jitter: spread around the delay, never below delay - jitter on either way
        box.set("both", delay=0.020, jitter=0.010)
        got = rtts(a, B, count=100, interval=0.05)
        spread = statistics.stdev(got)
        print(f"jitter 10 ms: RTT {min(got):.1f}..{max(got):.1f} ms, sd {spread:.1f}")
        assert min(got) >= 20.0 - 0.5
        assert spread > 2.0
        assert max(got) <= 60.0 + overhead + 5.0

        # loss one way: about that share of 1,000 pings goes missing
        box.set("both")
        box.set("ab", loss=0.2)
        got = rtts(a, B, count=1000, interval=0.003)
        lost = 1 - len(got) / 1000
        print(f"loss 20% a to b: {lost:.1%} of 1000 pings lost")
        assert 0.16 <= lost <= 0.24  # three standard deviations of a binomial(1000, 0.2)
        stats = box.stats()
        assert stats["ab"]["lost"] >= 160 and stats["ba"]["lost"] == 0

        # a rate: UDP offered at twice the rate arrives at the rate (less the headers of
        # its frames), the rest dropped at the tail of the box's queue; a backlogged queue
        # makes this the box's own figure, whatever TCP would make of a busy host's stalls
        rate, payload = 20e6, 1400
        frame = payload + 8 + 20 + 14  # UDP, IPv4, Ethernet
        box.set("both")
        box.set("ab", rate=rate, limit=200)
        before = box.stats()["ab"]
        server = b.spawn(["iperf3", "-s", "-1", "--forceflush"], name="iperf3-udp")
        lab.wait_for(lambda: "listening" in server.log(), timeout=10, what="iperf3")
        udp = ["-u", "-b", str(int(2 * rate)), "-l", str(payload)]
        out = a.run(["iperf3", "-c", B, "-t", "5", "-J", *udp], timeout=60).stdout
        received = json.loads(out)["end"]["sum_received"]["bits_per_second"]
        expected = rate * payload / frame
        overflow = box.stats()["ab"]["overflow"] - before["overflow"]
        print(
            f"rate 20 Mbit/s, UDP at 40: {received / 1e6:.2f} received, "
            f"{expected / 1e6:.2f} expected, {overflow} frames dropped at the tail"
        )
        assert abs(received - expected) <= 0.05 * expected
        assert overflow > 0

        # and TCP through the same setting never beats it
        server = b.spawn(["iperf3", "-s", "-1", "--forceflush"], name="iperf3-tcp")
        lab.wait_for(lambda: "listening" in server.log(), timeout=10, what="iperf3")
        out = a.run(["iperf3", "-c", B, "-t", "5", "-J"], timeout=60).stdout
        goodput = json.loads(out)["end"]["sum_received"]["bits_per_second"]
        print(f"rate 20 Mbit/s: TCP goodput {goodput / 1e6:.2f}")
        assert 0 < goodput <= 1.02 * rate * 1448 / 1514

        # a change at run time applies to what comes next
        box.set("both")
        got = rtts(a, B, count=20)
        assert statistics.median(got) < overhead + 1.0
