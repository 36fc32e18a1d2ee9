"""Verifiable usage accounting in the exit lab (topologies.py): a tidewire client signs
receipts for what a tidewire provider carries; the provider's ledger survives kill -9;
an over-billing provider is refused; a client that stops signing is cut off, and so is
one that opens a fresh session every half second instead. The cheating nodes run
through tools/misbehave.py (lab.tidewire's `misbehave`)."""

import json
import signal
import time
from typing import Any

from common import ping
from lab import TIDEWIRE, Lab, Node
from topologies import ExitLab, build_exit_lab

MiB = 1 << 20


def iperf_up(
    lab: Lab, x: ExitLab, *, size: str | None = None, seconds: int = 0, check: bool = True
) -> dict[str, Any]:
    server = x.internet.spawn(["iperf3", "-s", "--forceflush"], name="iperf3-server")
    lab.wait_for(lambda: "listening" in server.log(), timeout=10, what="iperf3 server")
    limit = 120 if size else seconds + 8  # iperf3 waits long for a peer that went away
    args = ["timeout", str(limit), "iperf3", "-c", "203.0.113.2", "-J"]
    args += ["-n", size] if size else ["-t", str(seconds)]
    out = x.client.run(args, timeout=300, check=False)
    if check:
        assert out.returncode == 0, out.stdout[-500:] + out.stderr
    return json.loads(out.stdout) if out.stdout.strip().startswith("{") else {}


def usage(node: Node) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(node.cli("usage", "--json").stdout)
    return result


def test_receipts_cover_what_iperf_moved_and_the_report_verifies() -> None:
    with Lab("acct") as lab:
        x = build_exit_lab(lab, with_wireguard_go=False)
        ping(x.client, "203.0.113.2")
        result = iperf_up(lab, x, size="200M")
        moved = result["end"]["sum_sent"]["bytes"]
        lab.wait_for(
            lambda: usage(x.provider_node)["sessions"][0]["unverified"] < 64 * 1024,
            timeout=15,
            what="the last receipt",
        )
        [s] = usage(x.provider_node)["sessions"]
        # verified inner IP bytes: iperf3 payload plus IP and TCP headers (about 4%); acks down
        assert moved <= s["verified_up"] <= moved * 1.06 + MiB, (moved, s)
        assert 0 < s["verified_down"] < s["verified_up"] * 0.1
        client_side = usage(x.client_node)["providers_used"][0]
        assert client_side["refused"] is None and client_side["receipts"] > 50
        assert abs(client_side["signed_up"] - s["verified_up"]) <= MiB
        st = x.client_node.status()
        if st["dataplane"] == "native":  # the client's traffic to its provider went natively
            sent = st["counters"].get("native_tx_bytes", 0)
            print(f"the client's send thread carried {sent} of {moved} bytes")
            assert sent >= moved * 0.9, st["counters"]

        report = lab.tmp / "epoch.json"
        x.provider_node.cli("report", "--epoch", "current", "-o", str(report))
        ok = x.provider.run([TIDEWIRE, "verify", str(report)], check=False)
        assert ok.returncode == 0 and ok.stdout.startswith("OK"), ok.stdout + ok.stderr
        doc = json.loads(report.read_text())
        # a late receipt (the transfer's last acks and FINs) may land between the two reads
        later = usage(x.provider_node)["sessions"][0]["verified_up"]
        assert s["verified_up"] <= doc["totals"]["verified_up"] <= later, (s, later)
        # flip one byte anywhere in a receipt: verify names the failure
        body = report.read_text()
        receipt_hex = doc["sessions"][0]["latest"]
        i = body.index(receipt_hex) + 200
        tampered = lab.tmp / "tampered.json"
        tampered.write_text(body[:i] + ("0" if body[i] != "0" else "1") + body[i + 1 :])
        bad = x.provider.run([TIDEWIRE, "verify", str(tampered)], check=False)
        assert bad.returncode == 1 and "FAIL" in bad.stdout and "tampered.json" in bad.stdout
        rewards = x.provider.run([TIDEWIRE, "rewards", str(report), "--json"])
        assert json.loads(rewards.stdout)["epochs"][0]["providers"][0]["reward"] > 0


def test_provider_killed_mid_transfer_keeps_its_receipts() -> None:
    with Lab("acctkill") as lab:
        x = build_exit_lab(lab, with_wireguard_go=False)
        ping(x.client, "203.0.113.2")
        iperf_up(lab, x, size="60M")
        time.sleep(2.5)
        before = usage(x.provider_node)["sessions"][0]
        client = x.client.spawn(["iperf3", "-c", "203.0.113.2", "-t", "30"], name="iperf3-long")
        time.sleep(2.0)
        x.provider_node.proc.popen.send_signal(signal.SIGKILL)  # mid-transfer
        x.provider_node.proc.popen.wait(timeout=10)
        config = x.provider_node.config.read_text()
        node = lab.tidewire(x.provider, "twexit", config)
        after = usage(node)["sessions"][0]
        assert after["session_id"] == before["session_id"]
        assert after["verified_up"] >= before["verified_up"] > 0
        # the client re-handshakes, says hello, and the same session goes on
        lab.wait_for(
            lambda: usage(node)["sessions"][0]["state"] == "active",
            timeout=40,
            what="the session to resume",
        )
        lab.wait_for(
            lambda: usage(node)["sessions"][0]["verified_up"] > after["verified_up"],
            timeout=40,
            what="new receipts after the restart",
        )
        client.popen.terminate()
        assert len(usage(node)["sessions"]) == 1


def test_an_over_billing_provider_is_refused_and_disconnected() -> None:
    with Lab("overbill") as lab:
        x = build_exit_lab(lab, with_wireguard_go=False, provider_misbehave=("overbill", "1.10"))
        ping(x.client, "203.0.113.2")
        iperf_up(lab, x, seconds=6, check=False)
        lab.wait_for(
            lambda: usage(x.client_node)["providers_used"][0]["refused"],
            timeout=20,
            what="the client to refuse an invoice",
        )
        assert "over-billed" in x.client_node.proc.log()
        assert not ping(x.client, "203.0.113.2", count=2, check=False)
        used = usage(x.client_node)["providers_used"][0]
        # whatever it signed was within its own count plus tolerance
        assert used["signed_up"] <= used["sent"] * 1.02 + MiB
        assert used["signed_down"] <= used["received"] * 1.02 + MiB
        assert x.client_node.status()["peers"] == []  # the provider is gone: no new handshakes


def test_a_client_that_stops_signing_is_cut_off() -> None:
    with Lab("nosign") as lab:
        x = build_exit_lab(
            lab,
            with_wireguard_go=False,
            client_misbehave=("silent",),
            accounting={"credit_window": 4 * MiB, "cutoff": 3.0},
        )
        ping(x.client, "203.0.113.2")
        result = iperf_up(lab, x, seconds=4, check=False)
        moved = result.get("end", {}).get("sum_received", {}).get("bytes", 0) if result else 0
        assert moved < 12 * MiB, f"{moved} bytes got through without receipts"
        lab.wait_for(
            lambda: usage(x.provider_node)["sessions"][0]["state"] == "cut off",
            timeout=15,
            what="the session to be cut off",
        )
        st = x.provider_node.status()
        assert not ping(x.client, "203.0.113.2", count=2, check=False)
        assert usage(x.provider_node)["sessions"][0]["verified_up"] == 0
        assert st["peers"][0]["tx_bytes"] < 12 * MiB


def wire_bytes(node_host: Any, dev: str) -> int:
    """Bytes through `dev` both ways (ip -s -j link)."""
    [link] = json.loads(node_host.run(["ip", "-s", "-j", "link", "show", "dev", dev]).stdout)
    stats = link["stats64"]
    return int(stats["rx"]["bytes"]) + int(stats["tx"]["bytes"])


def test_a_client_rotating_sessions_without_signing_is_cut_off_after_one_window() -> None:
    window = 4 * MiB
    with Lab("rotate") as lab:
        x = build_exit_lab(
            lab,
            with_wireguard_go=False,
            client_misbehave=("rotate", "0.5"),
            accounting={"credit_window": window, "cutoff": 3.0},
        )
        ping(x.client, "203.0.113.2")
        before = wire_bytes(x.internet, "eth0")
        iperf_up(lab, x, seconds=10, check=False)  # killed by `timeout` once it stalls
        through = wire_bytes(x.internet, "eth0") - before  # what the provider let out and in
        time.sleep(2.5)  # one flush interval: every session's counts are in the ledger
        u = usage(x.provider_node)
        sessions = u["sessions"]
        served = sum(s["unverified"] + s["verified_up"] + s["verified_down"] for s in sessions)
        served += sum(p["unverified_up"] + p["unverified_down"] for p in u["unverified_peers"])
        assert all(s["verified_up"] == 0 for s in sessions)
        assert through <= window + 2 * MiB, f"{through} bytes got through without receipts"
        assert served <= window + 2 * MiB, served  # one window, a packet, pings and acks
        # the ledger has what got through (inner IP bytes; the wire adds 14 per frame),
        # within one receipt interval (invoice_bytes, 1 MiB)
        assert abs(through - served) <= MiB, (through, served)
        assert len(sessions) <= 3 + 20 // 5 + 1, len(sessions)  # a burst, then one per 5 s
        assert not ping(x.client, "203.0.113.2", count=2, check=False)
