"""The main job: a provider, two clients (tidewire and stock wireguard-go), a home LAN and
"the internet", all in network namespaces on this machine (see topologies.py).

It brings the nodes up, shows `tidewire status`, moves real traffic from each client to
the internet through the provider, shows what the exit policy refused, shows the usage
the tidewire client signed receipts for, writes and verifies a signed epoch report, and
tears down.
Run it as root: `scripts/demo`.
"""

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from lab import TIDEWIRE, Lab
from topologies import build_exit_lab, tcp_check
from wg import wg_quick_down


def step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def show(ok: bool, what: str) -> None:
    print(f"  {'got through' if ok else 'refused   '}  {what}", flush=True)


def main() -> int:
    with Lab("demo") as lab:
        step(
            "building the lab: client, wgclient, provider (exit, sharing 200 Mbit/s down), "
            "lan, internet"
        )
        x = build_exit_lab(lab, share={"download": "200 Mbit/s", "max_clients": 8})
        try:
            internet_iperf = x.internet.spawn(
                ["iperf3", "-s", "--forceflush"], name="iperf3-internet"
            )
            lab.wait_for(
                lambda: "listening" in internet_iperf.log(),
                timeout=10,
                what="iperf3 on the internet host",
            )
            step("clients reach the internet through the provider")
            for host in (x.client, x.wgclient):
                ok = host.run("ping -c 3 -i 0.2 -W 2 203.0.113.2", check=False).returncode == 0
                show(ok, f"{host.name}: ping 203.0.113.2 (internet)")
                show(
                    tcp_check(host, "203.0.113.2", 80),
                    f"{host.name}: TCP 203.0.113.2:80 (internet web)",
                )
            step("iperf3 from the tidewire client to the internet host, 3 s")
            out = x.client.run(
                ["iperf3", "-c", "203.0.113.2", "-t", "3", "-J"], timeout=60, check=False
            )
            if out.returncode == 0:
                end = json.loads(out.stdout)["end"]
                print(
                    f"  {end['sum_received']['bits_per_second'] / 1e6:.0f} Mbit/s"
                    " received by the internet host"
                )
            else:
                print(f"  iperf3 failed: {out.stderr.strip() or out.stdout[-300:]}")
            step("the tidewire client pulls from the internet: the provider shares 200 Mbit/s")
            pull = x.client.run(
                ["iperf3", "-c", "203.0.113.2", "-R", "-t", "3", "-J"], timeout=60, check=False
            )
            try:
                end = json.loads(pull.stdout)["end"]
                print(
                    f"  {end['sum_received']['bits_per_second'] / 1e6:.0f} Mbit/s to the"
                    " tidewire client (the provider paces what it sends to 200 Mbit/s)"
                )
            except (ValueError, KeyError):
                print("  iperf3 failed")
            share = x.provider_node.status()["share"]
            for key, dirs in share["clients"].items():
                st = dirs.get("download", {})
                print(
                    f"  client {key[:8]}...: queue delay {st.get('delay', 0) * 1000:.1f} ms,"
                    f" {st.get('drops', 0)} dropped, {st.get('marks', 0)} ECN-marked"
                )
            step("the stock `wg` tool reads the provider (WireGuard's userspace API)")
            print(x.provider.run(["wg", "show", "twexit"], check=False).stdout.rstrip())
            step("a few of the provider's metrics (tidewire metrics, Prometheus text)")
            metrics = x.provider_node.cli("metrics", "twexit").stdout.splitlines()
            for line in metrics:
                if line.startswith(("tidewire_peers ", "tidewire_link_events_total", "process_")):
                    print(f"  {line}")
            step("what the exit policy keeps the clients away from")
            for host in (x.client, x.wgclient):
                for addr, what in (
                    ("192.168.77.2", "a host on the provider's home LAN"),
                    ("192.168.77.1", "the provider's LAN address"),
                    ("203.0.113.1", "the provider's WAN address"),
                ):
                    ok = host.run(f"ping -c 1 -W 1 {addr}", check=False).returncode == 0
                    show(ok, f"{host.name}: ping {addr} ({what})")
                show(tcp_check(host, "203.0.113.2", 25), f"{host.name}: TCP 203.0.113.2:25 (SMTP)")
            time.sleep(0.5)
            step("tidewire status on the provider")
            print(x.provider_node.cli("status").stdout)
            step("tidewire status on the tidewire client")
            print(x.client_node.cli("status").stdout)
            refused = x.provider_node.status()["exit"]["refused"]
            step(f"refused by the exit policy, by reason: {json.dumps(refused, sort_keys=True)}")
            time.sleep(2.5)  # the last invoice and receipt, and the ledger's flush
            step("tidewire usage on the provider: bytes the client signed for, and unverified ones")
            print(x.provider_node.cli("usage").stdout)
            step("tidewire usage on the tidewire client")
            print(x.client_node.cli("usage").stdout)
            report = lab.tmp / "epoch-report.json"
            step("tidewire report --epoch current, then tidewire verify (offline)")
            print(
                x.provider_node.cli(
                    "report", "--epoch", "current", "-o", str(report)
                ).stdout.strip()
            )
            print(x.provider.run([TIDEWIRE, "verify", str(report)], check=False).stdout.strip())
            tampered = lab.tmp / "tampered.json"
            text = report.read_text()
            at = text.index('"latest": "') + 200
            tampered.write_text(text[:at] + ("1" if text[at] == "0" else "0") + text[at + 1 :])
            step("the same report with one byte changed")
            print(x.provider.run([TIDEWIRE, "verify", str(tampered)], check=False).stdout.strip())
            step("tidewire rewards for the report (default schedule)")
            print(x.provider.run([TIDEWIRE, "rewards", str(report)], check=False).stdout.strip())
            # the lab's folder goes with the lab (it holds the nodes' keys); the report stays
            kept = Path(tempfile.gettempdir()) / "tidewire-demo-epoch-report.json"
            shutil.copyfile(report, kept)
            print(f"\n(the signed epoch report is kept in {kept})")
        finally:
            wg_quick_down(x.wgclient, x.wg_path)
            step("tearing down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
