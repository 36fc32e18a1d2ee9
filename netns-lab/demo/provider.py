"""The exit: a provider, two clients (tidewire and stock wireguard-go), a home LAN and
"the internet" (topologies.build_exit_lab). Real traffic from each client to the
internet through the provider, what the exit policy refuses, `tidewire status`, the
usage the tidewire client signed receipts for, and a signed epoch report verified
offline (and refused once one byte of it changes)."""

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from lab import TIDEWIRE, Host, Lab
from topologies import ExitLab, build_exit_lab, tcp_check
from wg import wg_quick_down

from demo.narrate import expect, say, show, step

INTERNET = "203.0.113.2"
REFUSED = (
    ("192.168.77.2", "a host on the provider's home LAN"),
    ("192.168.77.1", "the provider's LAN address"),
    ("203.0.113.1", "the provider's WAN address"),
)


def run() -> None:
    with Lab("demo") as lab:
        step("the exit: client, wgclient, provider (exit, sharing 200 Mbit/s down), lan, internet")
        x = build_exit_lab(lab, share={"download": "200 Mbit/s", "max_clients": 8})
        try:
            _traffic(lab, x)
            _policy(x)
            _accounting(lab, x)
        finally:
            wg_quick_down(x.wgclient, x.wg_path)


def _ping(host: Host, addr: str, count: int = 3) -> bool:
    return host.run(f"ping -c {count} -i 0.2 -W 2 {addr}", check=False).returncode == 0


def _iperf(host: Host, *args: str) -> float:
    """Mbit/s received at the far end of an iperf3 run of 3 s to the internet host."""
    out = host.run(["iperf3", "-c", INTERNET, "-t", "3", "-J", *args], timeout=60, check=False)
    expect(out.returncode == 0, f"iperf3 from {host.name} works: {out.stdout[-300:]}")
    end: dict[str, Any] = json.loads(out.stdout)["end"]
    return float(end["sum_received"]["bits_per_second"]) / 1e6


def _traffic(lab: Lab, x: ExitLab) -> None:
    internet_iperf = x.internet.spawn(["iperf3", "-s", "--forceflush"], name="iperf3-internet")
    lab.wait_for(
        lambda: "listening" in internet_iperf.log(), timeout=10, what="iperf3 on the internet"
    )
    step("clients reach the internet through the provider")
    for host in (x.client, x.wgclient):
        ok = _ping(host, INTERNET)
        show(ok, f"{host.name}: ping {INTERNET} (internet)")
        web = tcp_check(host, INTERNET, 80)
        show(web, f"{host.name}: TCP {INTERNET}:80 (internet web)")
        expect(ok and web, f"{host.name} reaches the internet through the provider")
    step("iperf3 from the tidewire client to the internet host, 3 s")
    say(f"{_iperf(x.client):.0f} Mbit/s received by the internet host")
    step("the tidewire client pulls from the internet: the provider shares 200 Mbit/s")
    pulled = _iperf(x.client, "-R")
    say(f"{pulled:.0f} Mbit/s to the tidewire client (the provider paces to 200 Mbit/s)")
    expect(pulled <= 200 * 1.05, "the provider holds the client to the shared 200 Mbit/s")
    share = x.provider_node.status()["share"]
    for key, dirs in share["clients"].items():
        st = dirs.get("download", {})
        say(
            f"client {key[:8]}...: queue delay {st.get('delay', 0) * 1000:.1f} ms,"
            f" {st.get('drops', 0)} dropped, {st.get('marks', 0)} ECN-marked"
        )
    step("the stock `wg` tool reads the provider (WireGuard's userspace API)")
    print(x.provider.run(["wg", "show", "twexit"], check=False).stdout.rstrip())
    step("a few of the provider's metrics (tidewire metrics, Prometheus text)")
    for line in x.provider_node.cli("metrics", "twexit").stdout.splitlines():
        if line.startswith(("tidewire_peers ", "tidewire_link_events_total", "process_")):
            say(line)


def _policy(x: ExitLab) -> None:
    step("what the exit policy keeps the clients away from")
    for host in (x.client, x.wgclient):
        for addr, what in REFUSED:
            ok = _ping(host, addr, count=1)
            show(ok, f"{host.name}: ping {addr} ({what})")
            expect(not ok, f"the exit policy refuses {host.name} {what}")
        smtp = tcp_check(host, INTERNET, 25)
        show(smtp, f"{host.name}: TCP {INTERNET}:25 (SMTP)")
        expect(not smtp, f"the exit policy refuses {host.name} SMTP")
    time.sleep(0.5)
    step("tidewire status on the provider")
    print(x.provider_node.cli("status").stdout)
    step("tidewire status on the tidewire client")
    print(x.client_node.cli("status").stdout)
    refused = x.provider_node.status()["exit"]["refused"]
    step(f"refused by the exit policy, by reason: {json.dumps(refused, sort_keys=True)}")


def _accounting(lab: Lab, x: ExitLab) -> None:
    time.sleep(2.5)  # the last invoice and receipt, and the ledger's flush
    step("tidewire usage on the provider: bytes the client signed for, and unverified ones")
    print(x.provider_node.cli("usage").stdout)
    step("tidewire usage on the tidewire client")
    print(x.client_node.cli("usage").stdout)
    report = lab.tmp / "epoch-report.json"
    step("tidewire report --epoch current, then tidewire verify (offline)")
    say(x.provider_node.cli("report", "--epoch", "current", "-o", str(report)).stdout.strip())
    verified = x.provider.run([TIDEWIRE, "verify", str(report)], check=False)
    say(verified.stdout.strip())
    expect(verified.returncode == 0, "the signed epoch report verifies")
    tampered = lab.tmp / "tampered.json"
    text = report.read_text()
    at = text.index('"latest": "') + 200
    tampered.write_text(text[:at] + ("1" if text[at] == "0" else "0") + text[at + 1 :])
    step("the same report with one byte changed")
    refused = x.provider.run([TIDEWIRE, "verify", str(tampered)], check=False)
    say(refused.stdout.strip())
    expect(refused.returncode != 0, "a report with one byte changed is refused")
    step("tidewire rewards for the report (default schedule)")
    print(x.provider.run([TIDEWIRE, "rewards", str(report)], check=False).stdout.strip())
    # the lab's folder goes with the lab (it holds the nodes' keys); the report stays
    kept = Path(tempfile.gettempdir()) / "tidewire-demo-epoch-report.json"
    shutil.copyfile(report, kept)
    say(f"(the signed epoch report is kept in {kept})")
