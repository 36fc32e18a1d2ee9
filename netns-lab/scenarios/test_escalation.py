"""Adaptive tunneling against a censor that escalates (issue: "a lab censor it survives").

    [client] 198.51.100.2 ---- [censor] ---- 198.51.102.2 [provider]
      endpoints = [udp://...:51820, masked://...:8443,       listen = the same four skins
                   tcp://...:8443, tls://...:443]

A native client moves a checksummed 50 MB transfer and pings every 100 ms while the
censor escalates: its TCP first-packet classifier judges every connection from the
start (the stream skins' first packets are exempt, so none is reset), then WireGuard's
signatures are dropped (the client moves to masked), then all UDP is blocked (it moves
to a stream skin). At
each step the longest gap between ping replies is at most 3 s and the provider answers
no new handshake; the transfer completes intact. When the censor stands down the
client is back on udp within the re-probe interval. An active prober then gets no byte
from the UDP skins and a web page from the TLS port.
"""

import hashlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from common import PY, random_file
from lab import Lab, Node
from test_paths import REPROBE, active, longest_gap, now, replies
from topologies import build_censored_pair

TOOLS = Path(__file__).resolve().parents[1] / "tools"
PROVIDER, TUNNEL, CLIENT_TUNNEL = "198.51.102.2", "10.99.0.1", "10.99.0.2"
SKINS = [
    f"udp://{PROVIDER}:51820",
    f"masked://{PROVIDER}:8443",
    f"tcp://{PROVIDER}:8443",
    f"tls://{PROVIDER}:443",
]
SIZE = 50 * 1000 * 1000


def responses(node: Node) -> int:
    return int(node.status()["counters"].get("responses_sent", 0))


def test_the_client_survives_an_escalating_censor() -> None:
    with Lab("escal") as lab:
        x = build_censored_pair(
            lab,
            endpoint=SKINS,
            classifier=True,  # judging every TCP connection the nodes ever open
            listen=[
                "udp://0.0.0.0:51820",
                "masked://0.0.0.0:8443",
                "tcp://0.0.0.0:8443",
                "tls://0.0.0.0:443",
            ],
        )
        client, censor_host, provider = x.client, x.censor_host, x.provider
        censor, client_node, provider_node = x.censor, x.client_node, x.provider_node
        pinger = client.spawn(["ping", "-D", "-n", "-i", "0.1", "-W", "1", TUNNEL], name="ping")
        lab.wait_for(lambda: len(replies(pinger)) >= 10, timeout=15, what="pings through udp")
        assert active(client_node) == "udp"
        handshakes = responses(provider_node)

        # a 50 MB transfer from the provider's side of the tunnel, paced so that it spans
        # the escalation (about 25 s at 16 Mbit/s), checked by SHA-256 at the client
        path, digest = random_file(lab, SIZE)
        sink = client.spawn(
            [PY, str(TOOLS / "tcpsink.py"), "serve", CLIENT_TUNNEL, "5001"], name="sink"
        )
        lab.wait_for(lambda: "listening" in sink.log(), timeout=10, what="the TCP sink")
        sender = provider.spawn(
            [PY, str(TOOLS / "tcpsink.py"), "send", CLIENT_TUNNEL, "5001", str(path), "16e6"],
            name="sender",
        )

        steps: list[tuple[str, Callable[[], None], set[str]]] = [
            ("signature drop", lambda: censor.signature_drop(True), {"masked", "tcp", "tls"}),
            ("UDP blocked", lambda: censor.block_udp(), {"tcp", "tls"}),
        ]
        for name, escalate, expected in steps:
            time.sleep(4)
            started = now(lab, client_node)
            escalate()

            def moved(expected: set[str] = expected) -> bool:
                return active(client_node) in expected

            def pinged(started: float = started) -> bool:
                return len([t for t in replies(pinger) if t > started]) >= 20

            lab.wait_for(moved, timeout=5, what=f"the client to leave a blocked path ({name})")
            lab.wait_for(pinged, timeout=10, what=f"pings after the {name}")
            gap = longest_gap(replies(pinger), started, now(lab, client_node))
            print(f"{name}: on {active(client_node)}, longest ping gap {gap:.2f} s")
            assert gap <= 3.0, (name, gap, client_node.status()["peers"][0])
            assert responses(provider_node) == handshakes, f"a new handshake at the {name}"

        lab.wait_for(lambda: not sender.alive(), timeout=120, what="the transfer to finish")
        lab.wait_for(lambda: len(sink.log().split()) >= 3, timeout=30, what="the checksum")
        got_digest, got_size = sink.log().split()[1:3]
        assert (got_digest, int(got_size)) == (digest, SIZE), "transfer corrupted or short"
        judged = [v for v in censor.tcp_verdicts() if v["server"].startswith(PROVIDER)]
        assert judged and all(v["verdict"] == "exempt" for v in judged), judged
        assert not censor.residual()

        # the censor stands down: back on udp within the re-probe interval
        censor.tcp_classifier(False)
        censor.unblock_udp()
        censor.signature_drop(False)
        lifted = now(lab, client_node)
        lab.wait_for(lambda: active(client_node) == "udp", timeout=REPROBE + 8, what="back on udp")
        print(f"back on udp {now(lab, client_node) - lifted:.1f} s after the censor stood down")
        assert responses(provider_node) == handshakes
        pinger.popen.terminate()

        # an active prober: nothing back from the UDP skins, a web page from tls
        probe = censor_host.run(
            [
                sys.executable,
                str(TOOLS / "prober.py"),
                PROVIDER,
                "--udp",
                "51820",
                "8443",
                "--tcp",
                "443",
            ],
            timeout=90,
        )
        results = json.loads(probe.stdout)
        udp = [r for r in results if r["proto"] == "udp"]
        assert udp and all(r["received"] == 0 for r in udp), udp
        pages = [r.get("page", "") for r in results if r["probe"] == "tls" and r["port"] == 443]
        assert any(p.startswith("HTTP/1.1 200") for p in pages), pages
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
