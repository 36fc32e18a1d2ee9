"""The lab censor (censor.py, middlebox/tcp_censor.py) and its active prober (tools/prober.py)
do what documented censors do, and the masked skin gets through what it should.

On the censored exit lab (topologies.build_exit_lab, censor=True): the packet-threshold rule
lets a WireGuard flow carry a few packets and then kills it, while a masked client moves
a transfer through it; the signature rule stops WireGuard; all of UDP blocked for a few
seconds stops the masked client until the block lifts by itself; a port block is counted
and lifted; the prober hears no byte from the provider's UDP skins, and the provider
counts each probe, replayed masked datagrams included.

On a censored path without a tunnel (topologies.build_censored_path): the TCP classifier
exempts a printable first packet, resets a fully random one at both ends and blocks the
server's ip:port until the residual timeout; the prober records what plain HTTP and TLS
servers answer (tidewire's own tls:// port comes when that skin lands).
"""

import json
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

from common import PY, ping, transfer
from lab import Host, Lab, Node
from middlebox.fully_encrypted import verdict
from topologies import build_censored_path, build_exit_lab

TOOLS = Path(__file__).resolve().parents[1] / "tools"
CLIENT, PROVIDER, SERVER = "198.51.100.2", "198.51.102.2", "198.51.102.2"
PRINTABLE = b"HELLO censor, this first packet is plain text\n"
RANDOM = random.Random(12).randbytes(300)  # a fixed draw the rules flag (checked below)


def probe(host: Host, target: str, *args: str, timeout: float = 60) -> list[dict[str, Any]]:
    out = host.run([PY, str(TOOLS / "prober.py"), target, *args], timeout=timeout).stdout
    result: list[dict[str, Any]] = json.loads(out)
    return result


def received(host: Host, addr: str, count: int) -> int:
    out = host.run(
        ["ping", "-n", "-c", str(count), "-i", "0.1", "-W", "1", addr], check=False, timeout=60
    ).stdout
    return sum(1 for line in out.splitlines() if "bytes from" in line)


def drops_total(node: Node) -> int:
    return sum(int(v) for v in node.status()["drops"].values())


def test_the_censor_stops_wireguard_and_the_masked_skin_gets_through() -> None:
    with Lab("censor") as lab:
        x = build_exit_lab(lab, censor=True)
        censor = x.censor
        assert censor is not None

        # (1) the packet threshold: a WireGuard flow carries a few packets, then dies ...
        censor.packet_threshold(20)
        got = received(x.wgclient, "203.0.113.2", 30)
        print(f"\nthreshold 20: {got} of 30 pings through before the flow died")
        assert 1 <= got <= 11, got  # 20 packets at most: ten pings and their replies
        assert censor.dropped("threshold") > 0
        assert not ping(x.wgclient, "203.0.113.2", count=2, check=False)
        # ... and a masked flow is not taken for one
        transfer(lab, x.client, x.internet, "203.0.113.2", 2 << 20)
        assert x.client_node.status()["peers"][0]["endpoint"] == f"masked://{PROVIDER}:8443"
        # switched off, it lets the WireGuard flow live again
        censor.packet_threshold(None)
        lab.wait_for(
            lambda: ping(x.wgclient, "203.0.113.2", count=1, check=False),
            timeout=15,
            what="WireGuard back with the threshold off",
        )

        # (2) the signature rule stops WireGuard, not the masked client
        censor.signature_drop(True)
        before = censor.dropped("signature")
        assert not ping(x.wgclient, "203.0.113.2", count=3, check=False)
        assert censor.dropped("signature") > before
        ping(x.client, "203.0.113.2")

        # (3) all UDP blocked for 4 s: the masked client stops, then resumes by itself
        censor.block_udp(seconds=4)
        blocked_at = time.monotonic()
        assert censor.udp_blocks() == ["udp"]
        assert not ping(x.client, "203.0.113.2", count=2, check=False)
        assert censor.dropped("blocked") > 0
        lab.wait_for(
            lambda: ping(x.client, "203.0.113.2", count=1, check=False),
            timeout=20,
            what="the UDP block to lift by itself",
        )
        assert time.monotonic() - blocked_at >= 3.5
        assert censor.udp_blocks() == []

        # (4) one port blocked until lifted (udp:// is signature-blocked: no way round)
        censor.block_udp(port=8443)
        before = censor.dropped("blocked")
        assert censor.udp_blocks() == ["8443"]
        assert not ping(x.client, "203.0.113.2", count=2, check=False)
        assert censor.dropped("blocked") > before
        censor.unblock_udp(port=8443)
        lab.wait_for(
            lambda: ping(x.client, "203.0.113.2", count=1, check=False),
            timeout=20,
            what="the masked client after the port block",
        )

        # (5) the prober hears nothing from either UDP skin; every probe is counted
        dump = lab.tmp / "censor.jsonl"
        capture = censor.host.spawn([PY, str(TOOLS / "capture.py"), "any", str(dump)])
        lab.wait_for(lambda: "capturing" in capture.log(), timeout=10, what="the capture")
        ping(x.client, "203.0.113.2", count=5)
        os.kill(capture.popen.pid, signal.SIGTERM)
        capture.popen.wait(timeout=5)
        seen = [json.loads(line) for line in dump.read_text().splitlines()]
        replays = [d["payload"] for d in seen if d["src"] == CLIENT and d["dport"] == 8443][:4]
        assert len(replays) == 4
        before = drops_total(x.provider_node)
        results = probe(
            censor.host, PROVIDER, "--udp", "51820", "8443", "--replay", *replays, "--wait", "2"
        )
        assert len(results) == 2 * (6 + len(replays))
        assert [r for r in results if r["received"]] == []
        assert {r["end"] for r in results} == {"silent"}
        lab.wait_for(
            lambda: drops_total(x.provider_node) >= before + len(results),
            timeout=5,
            what="the provider to count every probe",
        )
        ping(x.client, "203.0.113.2")  # and the replays did not disturb the session


def test_the_tcp_classifier_resets_fully_encrypted_flows_and_blocks_the_server() -> None:
    assert verdict(RANDOM).block and not verdict(PRINTABLE).block
    with Lab("tcpcensor") as lab:
        x = build_censored_path(lab)
        x.censor.tcp_classifier(True, residual=4)

        def send(port: int, payload: bytes) -> dict[str, Any]:
            args = ("--tcp", str(port), "--probes", "", "--payload", payload.hex(), "--wait", "2")
            (result,) = probe(x.user, SERVER, *args)
            return result

        # a printable first packet is exempt: the echo comes back
        ok = send(7000, PRINTABLE)
        assert ok["answer"] == PRINTABLE.hex() and ok["end"] == "answered", ok
        # a fully random one is flagged: reset at both ends, the server ip:port blocked
        flagged = send(7000, RANDOM)
        assert flagged["end"] == "reset", flagged
        lab.wait_for(
            lambda: any(
                line.endswith(" reset")
                for p in lab.procs
                for line in p.log().splitlines()
                if p.name == "echo"
            ),
            timeout=5,
            what="the server to see the reset",
        )
        assert x.censor.residual() == [f"{SERVER}:7000"]
        verdicts = [(v["verdict"], v["rule"]) for v in x.censor.tcp_verdicts()]
        assert verdicts == [("exempt", "Ex2"), ("block", "fully-encrypted")]

        # residual blocking: even a printable connection to that ip:port gets nowhere,
        # while another port of the same server still works
        blocked_at = time.monotonic()
        before = x.censor.dropped("residual")
        assert send(7000, PRINTABLE)["end"] == "unreachable"
        assert x.censor.dropped("residual") > before
        assert send(7001, PRINTABLE)["end"] == "answered"
        # until the residual timeout, when it lifts by itself
        lab.wait_for(lambda: not x.censor.residual(), timeout=10, what="the residual block")
        assert time.monotonic() - blocked_at >= 1.5
        assert send(7000, PRINTABLE)["end"] == "answered"

        # switched off, the classifier judges nothing more
        x.censor.tcp_classifier(False)
        assert send(7000, RANDOM)["end"] == "answered"
        assert len(x.censor.tcp_verdicts()) == 4


def test_the_prober_records_what_http_and_tls_servers_answer() -> None:
    with Lab("prober") as lab:
        x = build_censored_path(lab)
        site = lab.tmp / "site"
        site.mkdir()
        (site / "index.html").write_text("<h1>a web page</h1>\n")
        cert, key = lab.tmp / "cert.pem", lab.tmp / "key.pem"
        x.server.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=lab"]
        )  # fmt: skip
        web = x.server.spawn(
            [sys.executable, "-m", "http.server", "80", "--bind", SERVER, "-d", str(site)],
            name="http",
        )
        tls = x.server.spawn(
            ["openssl", "s_server", "-accept", "443", "-cert", str(cert), "-key", str(key),
             "-www", "-quiet"], name="s_server"
        )  # fmt: skip
        lab.wait_for(
            lambda: (
                ping(x.user, SERVER, count=1, check=False)
                and all(
                    probe(x.user, SERVER, "--tcp", str(p), "--probes", "http", "--wait", "1")[0][
                        "end"
                    ]
                    != "refused"
                    for p in (80, 443)
                )
            ),
            timeout=15,
            what="the web servers",
        )
        assert web.alive() and tls.alive()
        results = probe(x.censor.host, SERVER, "--tcp", "80", "443", "--udp", "7000")
        by = {(r["port"], r["probe"]): r for r in results}

        http = by[(80, "http")]
        assert bytes.fromhex(http["answer"]).startswith(b"HTTP/1.0 200")
        assert b"a web page" in bytes.fromhex(http["answer"])
        page = by[(443, "tls")]
        assert page["tls"] == "TLSv1.3" and page["received"] > 0, page
        assert page["page"].startswith("HTTP/1.0 200") and "s_server" in page["page"]
        # random bytes to the TLS port: a TLS alert or a close, recorded as it came
        assert by[(443, "random-600")]["end"] in {"closed", "reset", "answered"}
        # the UDP echo sends every probe back
        udp = [r for r in results if r["proto"] == "udp"]
        assert udp and all(r["received"] == r["sent"] for r in udp)
