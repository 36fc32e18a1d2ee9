"""Tunnel congestion control on the exit lab: a provider sharing 40 Mbit/s between two
clients (a tidewire client and a stock wireguard-go one, 4 TCP streams each) gives each
half, holds the rate, and keeps a ping's added latency low (netns-lab/share_lab.py);
`per_client` caps each client, `max_clients` refuses a client too many at the handshake
and a `quota` stops service once used, each refusal counted where status shows it."""

from common import ping, shaping_queues
from lab import Lab
from share_lab import build, measure

from tidewire.node.sharing import OVERHEAD

QUEUES = shaping_queues()  # the provider's
# the ping's added RTT under load, ms: median and 95th percentile
ADDED_MEDIAN, ADDED_P95 = 5.0, 15.0


def test_a_shared_40_mbit_s_is_split_evenly_with_low_latency() -> None:
    with Lab("share") as lab:
        x = build(lab, {"download": "40 Mbit/s"})
        run = measure(lab, x, seconds=15)
        print(f"share 40 Mbit/s: {run}")
        if run.added_median > ADDED_MEDIAN or run.added_p95 > ADDED_P95:
            # the ping's RTT counts the hosts' scheduling as well as the queue: a CI host
            # busy for a stretch gave 6.26 ms of added median with the rate and split
            # right, and an idle host 1-2 ms. A standing queue fails both runs
            run = measure(lab, x, seconds=15)
            print(f"share 40 Mbit/s, second run: {run}")
        # the rate on the wire (outer headers count against it) is the configured one
        assert abs(run.wire_mbps - 40.0) <= 0.05 * 40.0, run.wire_mbps
        total = sum(run.mbps.values())
        for name, mbps in run.mbps.items():
            assert abs(mbps - total / 2) <= 0.10 * (total / 2), (name, run.mbps)
        assert run.added_median <= ADDED_MEDIAN, (run.idle_ms, run.added_median)
        assert run.added_p95 <= ADDED_P95, (run.idle_ms, run.added_p95)
        full = x.provider_node.status()
        assert full["queues"] == QUEUES, full["queues"]
        st = full["share"]
        assert st["download"] == 5_000_000 and len(st["clients"]) == 2


def test_per_client_caps_each_client() -> None:
    """`per_client` alone: each of the two clients, pulling 4 streams, gets its cap (the
    cap counts the outer headers, so goodput is the cap less them) and no more."""
    # iperf3 counts TCP payload: of a 1420-byte inner packet, 1368 bytes past the IPv4,
    # TCP and timestamp headers, and the cap charges it 1420 + OVERHEAD
    goodput = 10.0 * (1420 - 20 - 20 - 12) / (1420 + OVERHEAD)
    with Lab("share-cap") as lab:
        x = build(lab, {"per_client": "10 Mbit/s"})
        run = measure(lab, x, seconds=12, omit=3)
        print(f"per_client 10 Mbit/s: {run} (goodput at the cap {goodput:.2f})")
        for name, mbps in run.mbps.items():
            assert abs(mbps - goodput) <= 0.10 * goodput, (name, run.mbps)
        full = x.provider_node.status()
        assert full["queues"] == QUEUES, full["queues"]
        st = full["share"]
        assert st["per_client"] == 1_250_000
        assert all(c["download"]["cap"] == 1_250_000 for c in st["clients"].values())


def test_max_clients_refuses_a_second_client_at_the_handshake() -> None:
    """`max_clients = 1`: the tidewire client is served; the wireguard-go client's
    handshakes are refused, counted in the link's drops, in [share] status and in the
    metrics, and it gets no traffic through."""
    with Lab("share-max") as lab:
        x = build(lab, {"max_clients": 1})
        ping(x.client, "203.0.113.2")  # the first client takes the one place
        assert not ping(x.wgclient, "203.0.113.2", count=3, check=False)
        node = x.provider_node

        def refused() -> int:
            return int(node.status()["share"]["refused_capacity"])

        lab.wait_for(refused, timeout=20, what="a counted capacity refusal")
        st = node.status()
        assert st["drops"]["link_initiation_capacity"] >= 1, st["drops"]
        metrics = node.cli("metrics").stdout
        [line] = [m for m in metrics.splitlines() if m.startswith("tidewire_share_capacity_")]
        assert float(line.split()[-1]) >= 1, line
        ping(x.client, "203.0.113.2")  # the admitted client is still served


def test_a_quota_stops_service_once_its_bytes_are_used() -> None:
    """A small quota: a download runs until the quota's bytes are served, then nothing
    more passes (counted refusals), and status shows the quota used up."""
    with Lab("share-quota") as lab:
        x = build(lab, {"quota": "4 MB/day"}, with_wireguard_go=False)
        ping(x.client, "203.0.113.2")
        server = x.internet.spawn(["iperf3", "-s", "-p", "5201", "--forceflush"], name="iperf")
        lab.wait_for(lambda: "listening" in server.log(), timeout=10, what="the iperf3 server")
        pull = x.client.spawn(
            [
                "iperf3",
                "-c",
                "203.0.113.2",
                "-p",
                "5201",
                "-R",
                "-t",
                "6",
                "--connect-timeout",
                "3000",
            ],
            name="pull",
        )
        node = x.provider_node

        def used_up() -> dict[str, int] | None:
            quota = node.status()["share"]["quota"]
            return quota if quota["used"] >= quota["limit"] and quota["refused"] > 0 else None

        quota = lab.wait_for(used_up, timeout=30, what="the quota to be used up")
        print(f"quota: {quota}")
        assert quota["limit"] == 4_000_000
        # the last packet may cross the line: one per native thread, each way
        assert quota["used"] <= quota["limit"] + 2 * 1500
        pull.popen.kill()
        assert not ping(x.client, "203.0.113.2", count=3, check=False)
        st = node.status()
        assert st["drops"]["quota_exhausted"] >= quota["refused"] > 0, st["drops"]
        if QUEUES == "threads":  # the quota's gate is in the native threads
            assert "native send and receive threads run" in st["dataplane_why"], st
            assert st["share"]["quota"]["used"] == quota["used"]  # nothing past it since
