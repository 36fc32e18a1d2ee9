"""Adaptive tunneling: a native client and a provider with the lab censor between them
(topologies.build_censored_pair, as scenarios/test_escalation.py). The client has four
candidate paths, one per skin (udp, masked, tcp, tls); its session (keys, counters) is
the peer's, so moving between them needs no new handshake. While a checksummed
transfer and a ping every 100 ms run through the tunnel, the censor escalates: it
judges every TCP connection's first packet (the fully-encrypted classifier), drops
WireGuard's signatures, then blocks all UDP, then the tcp skin's port (a residual
block, set by hand). Each time the demo prints where the
client went, how soon, the longest gap between ping replies, and that the provider
answered no new handshake; then the transfer's checksum, and how soon the client is
back on udp once the censor stands down, and what its active prober gets from the
provider."""

import time
from collections.abc import Callable
from pathlib import Path

from common import PY, random_file
from lab import Lab, Proc
from test_censor import probe
from test_escalation import CLIENT_TUNNEL, PROVIDER, SKINS, TUNNEL, responses
from test_paths import REPROBE, active, longest_gap, now, replies
from topologies import CensoredPair, build_censored_pair

from demo.narrate import Stopwatch, expect, say, step

TOOLS = Path(__file__).resolve().parents[1] / "tools"
LISTEN = ["udp://0.0.0.0:51820", "masked://0.0.0.0:8443", "tcp://0.0.0.0:8443", "tls://0.0.0.0:443"]
SIZE, RATE = 36_000_000, 16e6  # a transfer of 18 s, spanning the escalation
STREAMS = {"tcp", "tls"}
GAP = 3.0  # seconds: the longest a switch may stop the pings (the lab test's bound)


def run() -> None:
    with Lab("demo-skins") as lab:
        step("adaptive tunneling: one session over four skins, a censor that escalates")
        x = build_censored_pair(lab, endpoint=SKINS, listen=LISTEN, classifier=True)
        say(f"client --- censor --- provider {PROVIDER}, listening on four skins")
        say("the client's candidates, in order: " + ", ".join(s.split(":")[0] for s in SKINS))
        pinger = x.client.spawn(["ping", "-D", "-n", "-i", "0.1", "-W", "1", TUNNEL], name="ping")
        lab.wait_for(lambda: len(replies(pinger)) >= 10, timeout=15, what="pings through udp")
        expect(active(x.client_node) == "udp", "the client starts on udp, its first candidate")
        say("the client raced its candidates and runs on udp://; a ping every 100 ms")
        handshakes = responses(x.provider_node)
        path, digest = random_file(lab, SIZE)
        sink = x.client.spawn(
            [PY, str(TOOLS / "tcpsink.py"), "serve", CLIENT_TUNNEL, "5001"], name="sink"
        )
        lab.wait_for(lambda: "listening" in sink.log(), timeout=10, what="the TCP sink")
        sender = x.provider.spawn(
            [PY, str(TOOLS / "tcpsink.py"), "send", CLIENT_TUNNEL, "5001", str(path), str(RATE)],
            name="sender",
        )
        say(f"the provider sends the client {SIZE / 1e6:.0f} MB at {RATE / 1e6:.0f} Mbit/s")
        escalation: list[tuple[str, Callable[[], None], set[str]]] = [
            (
                "drops WireGuard's signatures",
                lambda: x.censor.signature_drop(True),
                STREAMS | {"masked"},
            ),
            ("blocks all UDP", x.censor.block_udp, STREAMS),
            ("blocks the tcp skin's port", lambda: x.censor.block_tcp(PROVIDER, 8443), {"tls"}),
        ]
        for what, escalate, expected in escalation:
            time.sleep(3)
            _escalate(lab, x, pinger, what, escalate, expected)
            expect(
                responses(x.provider_node) == handshakes,
                f"the provider answers no new handshake when the censor {what}",
            )
        say("the provider answered no new handshake: the same session throughout")
        x.censor.block_tcp(PROVIDER, 8443, on=False)
        lab.wait_for(lambda: not sender.alive(), timeout=60, what="the transfer to finish")
        lab.wait_for(lambda: len(sink.log().split()) >= 3, timeout=30, what="the checksum")
        got_digest, got_size = sink.log().split()[1:3]
        expect(
            (got_digest, int(got_size)) == (digest, SIZE),
            "the transfer across the switches arrives intact",
        )
        say(f"the {SIZE / 1e6:.0f} MB arrived intact across the switches (SHA-256 matches)")
        judged = [v for v in x.censor.tcp_verdicts() if v["server"].startswith(PROVIDER)]
        # (the classifier's own residual blocks: none, once the hand-made one is lifted)
        expect(
            judged and all(v["verdict"] == "exempt" for v in judged) and not x.censor.residual(),
            "the censor's TCP classifier exempts every connection of the stream skins",
        )
        say(
            f"the censor's classifier judged {len(judged)} TCP connection(s) to the provider:"
            " all exempt, none reset"
        )
        x.censor.tcp_classifier(False)
        x.censor.unblock_udp()
        x.censor.signature_drop(False)
        back = Stopwatch()
        lab.wait_for(
            lambda: active(x.client_node) == "udp", timeout=REPROBE + 8, what="back on udp"
        )
        say(f"the censor stands down: the client re-probed and is back on udp:// in {back():.1f} s")
        expect(responses(x.provider_node) == handshakes, "still no new handshake")
        pinger.popen.terminate()
        _prober(x)


def _prober(x: CensoredPair) -> None:
    """The censor's active prober at the provider's udp and masked ports and its tls
    port: no byte back from the UDP skins, an ordinary web page from tls."""
    took = Stopwatch()
    results = probe(x.censor_host, PROVIDER, "--udp", "51820", "8443", "--tcp", "443", timeout=90)
    udp = [r for r in results if r["proto"] == "udp"]
    expect(udp and all(r["received"] == 0 for r in udp), "the UDP skins answer a prober nothing")
    pages = [r.get("page", "") for r in results if r["probe"] == "tls" and r["port"] == 443]
    expect(any(p.startswith("HTTP/1.1 200") for p in pages), "the tls port serves a web page")
    say(
        f"the censor's active prober ({len(results)} probes, {took():.1f} s): not one byte"
        f" back from udp and masked (ports 51820, 8443); tls on 443 serves it a web page"
    )


def _escalate(
    lab: Lab,
    x: CensoredPair,
    pinger: Proc,
    what: str,
    escalate: Callable[[], None],
    expected: set[str],
) -> None:
    started = now(lab, x.client_node)
    took = Stopwatch()
    escalate()
    lab.wait_for(
        lambda: active(x.client_node) in expected,
        timeout=5,
        what=f"the client to leave the blocked path when the censor {what}",
        interval=0.05,
    )
    moved = took()
    lab.wait_for(
        lambda: len([t for t in replies(pinger) if t > started]) >= 20,
        timeout=10,
        what=f"pings after the censor {what}",
    )
    gap = longest_gap(replies(pinger), started, now(lab, x.client_node))
    say(
        f"censor {what}: the client moved to {active(x.client_node)}:// in {moved:.1f} s,"
        f" longest ping gap {gap:.1f} s"
    )
    expect(gap <= GAP, f"pings stop for at most {GAP} s when the censor {what}")
