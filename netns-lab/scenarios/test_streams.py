"""The tcp and tls skins with UDP blocked at the provider:

[a] 192.168.241.1 ---- veth ---- 192.168.241.2 [b]  nft: every UDP datagram in is dropped
    client, only a tcp:// (then tls://)         provider, listen udp, masked, tcp, tls
    endpoint for b

Over each skin: a ping and a checksummed transfer both ways through the tunnel; the
provider shows the client's path on that skin. Then probes from a's namespace (outside
the tunnel): a TLS prober gets TLS 1.3, a certificate and an HTTP 200 page from the tls
port; an HTTP GET on the tcp port is closed without a byte; the tunnel still works
after them, and the provider counted each refusal. And a stream peer's traffic keeps
to a `[share]` rate like any other.
"""

import json

import pytest
from common import PY, TOOLS, ping, shaping_queues, transfer
from lab import Host, Lab

from tidewire.node.sharing import OVERHEAD

PROVIDER = "192.168.241.2"
QUEUES = shaping_queues()  # b's, when it shapes
LISTEN = [
    "udp://0.0.0.0:51821",
    "masked://0.0.0.0:8443",
    "tcp://0.0.0.0:8443",
    "tls://0.0.0.0:443",
]
BLOCK_UDP = """table inet streams_test {
    counter udp_dropped { }
    chain input { type filter hook input priority 0; policy accept;
        iifname != "lo" meta l4proto udp counter name udp_dropped drop; }
}
"""


def probe(host: Host, kind: str, port: int) -> dict:  # type: ignore[type-arg]
    out = host.run([PY, str(TOOLS / "stream_probe.py"), kind, PROVIDER, str(port)], timeout=30)
    result: dict = json.loads(out.stdout)  # type: ignore[type-arg]
    return result


def udp_dropped(host: Host) -> int:
    out = host.run("nft -j list counter inet streams_test udp_dropped").stdout
    items = json.loads(out)["nftables"]
    return int(next(i["counter"]["packets"] for i in items if "counter" in i))


@pytest.mark.parametrize("skin", ["tcp", "tls"])
def test_a_client_with_only_a_stream_endpoint_gets_through_blocked_udp(skin: str) -> None:
    with Lab(f"st{skin}") as lab:
        a, b = lab.host("a"), lab.host("b")
        lab.link(a, b, "192.168.241.1/24", f"{PROVIDER}/24")
        b.run(["nft", "-f", "-"], input=BLOCK_UDP)
        port = 8443 if skin == "tcp" else 443
        na, nb = lab.tidewire_pair(
            a,
            b,
            endpoint=f"{skin}://{PROVIDER}:{port}",
            tunnel_a=["10.77.0.1/24", "fd77::1/64"],
            tunnel_b=["10.77.0.2/24", "fd77::2/64"],
            b_listen=LISTEN,
        )
        assert nb.status()["listen"] == LISTEN
        ping(a, "10.77.0.2", count=5)
        ping(b, "fd77::1")
        transfer(lab, a, b, "10.77.0.2", 5 << 20)
        transfer(lab, b, a, "10.77.0.1", 5 << 20, port=5002)
        assert na.status()["peers"][0]["endpoint"] == f"{skin}://{PROVIDER}:{port}"
        seen = nb.status()["peers"][0]["endpoint"]
        assert seen.startswith(f"{skin}://192.168.241.1:"), seen  # the accepted connection
        # the UDP block is real: a datagram to the provider's udp port is dropped
        before = udp_dropped(b)
        a.run([PY, str(TOOLS / "probe.py"), PROVIDER, "51821", "0.5", "00" * 32], timeout=30)
        assert udp_dropped(b) > before

        # probers outside the tunnel
        tls = probe(a, "tls", 443)
        assert tls["version"] == "TLSv1.3" and tls["subject"].startswith("CN=")
        assert tls["head"] == "HTTP/1.1 200 OK" and tls["html"], tls
        plain = probe(a, "tcp", 8443)
        assert plain["reply"] == 0, plain
        drops = nb.status()["drops"]
        assert drops.get("tls_fallback", 0) >= 1, drops
        assert drops.get("tcp_stream_http", 0) + drops.get("tcp_stream_frame_size", 0) >= 1
        ping(a, "10.77.0.2", count=3)  # the tunnel's own connection was not disturbed


def test_a_stream_peers_traffic_is_shaped_like_any_other() -> None:
    """[share] `upload` on b (its own sending): what it sends to a tls-only peer takes
    the Python path (the stream skin), and on the native threads queues in their queue
    all the same (node/thread_slots.py), so a TCP transfer b to a gets the rate, not the
    skin's speed."""
    with Lab("stshare") as lab:
        a, b = lab.host("a"), lab.host("b")
        lab.link(a, b, "192.168.241.1/24", f"{PROVIDER}/24")
        _, nb = lab.tidewire_pair(
            a,
            b,
            endpoint=f"tls://{PROVIDER}:443",
            tunnel_a=["10.77.0.1/24"],
            tunnel_b=["10.77.0.2/24"],
            b_listen=LISTEN,
            share={"upload": "20 Mbit/s"},
        )
        ping(a, "10.77.0.2", count=3)
        server = a.spawn(["iperf3", "-s", "--forceflush"], name="iperf3")
        lab.wait_for(lambda: "listening" in server.log(), timeout=10, what="iperf3 -s")
        out = b.run(["iperf3", "-c", "10.77.0.1", "-t", "6", "-O", "2", "-J"], timeout=60)
        mbps = json.loads(out.stdout)["end"]["sum_received"]["bits_per_second"] / 1e6
        st = nb.status()
        print(f"tls under upload = 20 Mbit/s: {mbps:.1f} Mbit/s, queues {st['queues']}")
        # the rate counts each packet's inner size and 68 bytes: goodput is a little less
        goodput = 20.0 * (1420 - 20 - 20 - 12) / (1420 + OVERHEAD)
        assert 0.7 * goodput <= mbps <= 1.05 * goodput, mbps
        assert st["peers"][0]["endpoint"].startswith("tls://"), st["peers"]
        assert st["queues"] == QUEUES, st["dataplane_why"]
