"""The masked skin through a WireGuard censor (topologies.build_exit_lab, censor=True).

With the censor dropping WireGuard's message signatures, a WireGuard-mode client cannot
complete a handshake (the censor's counter shows it tried) while a native client whose
first endpoint is masked:// reaches the internet through the exit, moves a checksummed
transfer and signs receipts for it; a capture at the censor holds no datagram with
WireGuard's type bytes and sizes between that client and the provider; and an active
prober that sends random bytes or replays captured masked datagrams to the masked port
hears nothing back, while the provider counts every one.
"""

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from common import PY, ping, transfer
from lab import Lab, Node
from topologies import build_exit_lab

TOOLS = Path(__file__).resolve().parents[1] / "tools"
CLIENT, PROVIDER = "198.51.100.2", "198.51.102.2"
SIGNATURES = {"01000000": 156, "02000000": 100, "03000000": 72}


def wireguard_looking(d: dict[str, Any]) -> bool:
    word = d["payload"][:8]
    return bool(word == "04000000" or SIGNATURES.get(word) == d["length"])


def drops_total(node: Node) -> int:
    return sum(int(v) for v in node.status()["drops"].values())


def test_a_masked_client_gets_through_a_wireguard_censor() -> None:
    with Lab("masked") as lab:
        x = build_exit_lab(lab, censor=True)
        censor, wg_node = x.censor, x.wg_node
        assert censor is not None and wg_node is not None
        censor.signature_drop(True)
        dump = lab.tmp / "censor.jsonl"
        capture = censor.host.spawn([PY, str(TOOLS / "capture.py"), "any", str(dump)])
        lab.wait_for(lambda: "capturing" in capture.log(), timeout=10, what="the capture")

        # (1) the WireGuard-mode client is stopped at the censor, the masked one is not
        assert not ping(x.wgclient, "203.0.113.2", count=3, check=False)
        assert censor.dropped("signature") > 0
        assert wg_node.status()["peers"][0]["latest_handshake"] is None
        ping(x.client, "203.0.113.2")
        transfer(lab, x.client, x.internet, "203.0.113.2", 4 << 20)
        st = x.client_node.status()
        assert st["peers"][0]["endpoint"] == f"masked://{PROVIDER}:8443"
        # the upload ran in the threads at both ends of the masked path
        for node, counter in (
            (x.client_node, "native_tx_datagrams"),
            (x.provider_node, "native_rx_datagrams"),
        ):
            ns = node.status()
            if ns["dataplane"] == "native":
                assert ns["counters"].get(counter, 0) > 1000, ns["counters"]
        assert x.provider_node.status()["listen"] == [
            "udp://0.0.0.0:51820",
            "masked://0.0.0.0:8443",
        ]

        def receipts() -> Any:
            usage = json.loads(x.provider_node.cli("usage", "--json").stdout)
            return [s for s in usage["sessions"] if s["verified_up"] > 4 << 20]

        lab.wait_for(receipts, timeout=15, what="receipts for the transfer")

        # (2) nothing on the masked path looks like WireGuard. (The client also lists
        # udp://...:51820: its path set probes that spare path now and then, in WireGuard
        # framing, and the censor's signature rule drops those; they carry no traffic.)
        os.kill(capture.popen.pid, signal.SIGTERM)
        capture.popen.wait(timeout=5)
        seen = [json.loads(line) for line in dump.read_text().splitlines()]
        pair = [d for d in seen if {d["src"], d["dst"]} == {CLIENT, PROVIDER}]
        ours = [d for d in pair if 8443 in (d["sport"], d["dport"])]
        assert len(ours) > 50  # the transfer went through here (a GSO run of 64 counts once)
        assert not [d for d in ours if wireguard_looking(d)]
        spare = [d for d in pair if d not in ours]
        assert len(spare) < 20 and all(d["dport"] == 51820 for d in spare), spare
        # the capture does see WireGuard when there is some: the other client's initiations
        assert [d for d in seen if d["src"] == "198.51.101.2" and wireguard_looking(d)]

        # (3) an active probe of the masked port gets no answer, and each probe is counted
        replays = [d["payload"] for d in ours if d["src"] == CLIENT and d["dport"] == 8443][:6]
        randoms = [os.urandom(n).hex() for n in (1, 16, 32, 64, 148, 200, 600, 1200)]
        before = drops_total(x.provider_node)
        masked_before = x.provider_node.status()["drops"].get("masked_unwrap_failed", 0)
        out = censor.host.run(  # the censor probes: the client's own traffic is tunnelled
            [sys.executable, str(TOOLS / "probe.py"), PROVIDER, "8443", "2", *randoms, *replays],
            timeout=30,
        )
        assert out.stdout.strip() == "0", out.stdout
        sent = len(randoms) + len(replays)
        try:
            lab.wait_for(
                lambda: drops_total(x.provider_node) >= before + sent,
                timeout=5,
                what="the provider to count every probe",
            )
        except Exception:
            raise AssertionError((before, sent, x.provider_node.status())) from None
        failed = x.provider_node.status()["drops"].get("masked_unwrap_failed", 0)
        assert failed - masked_before >= len(randoms) - 1  # one in 256 unmasks as a decoy
