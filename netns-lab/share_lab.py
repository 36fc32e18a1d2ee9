"""The shared-uplink measurement of tunnel congestion control, for the lab test and the
latency benchmark: two clients of one provider (the exit lab: a tidewire client and a
stock wireguard-go one) each pull 4 TCP streams from the internet host through the
provider while a ping every 50 ms runs from the tidewire client. Reports each client's
goodput, the provider's rate on the wire towards its clients, and the ping's RTT idle
and under load.

The provider is tidewire (`build`), or Debian's wireguard-go with the exit NAT an
operator sets up by hand (`build_wireguard_go_provider`): forwarding on in the
provider's namespace and an nftables masquerade out of its internet link. Then the
tidewire client speaks plain WireGuard to it.
"""

import json
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from lab import Host, Lab, genkey, tidewire_toml
from topologies import ExitLab, build_exit_lab, exit_lab_hosts, wg_client_up
from wg import wg_conf, wg_quick_up

NAT = """table ip wgnat {
  chain post {
    type nat hook postrouting priority srcnat;
    ip saddr 10.99.0.0/24 oifname "wan0" masquerade
  }
}
"""


class ShareHosts(Protocol):
    client: Host  # the tidewire client; it pings
    wgclient: Host  # the stock wireguard-go client
    provider: Host
    internet: Host


@dataclass
class WgProviderLab:
    client: Host
    wgclient: Host
    provider: Host
    internet: Host


@dataclass
class ShareRun:
    mbps: dict[str, float]  # goodput per client
    wire_mbps: float  # IP bytes the provider sent towards its clients, per second
    idle_ms: float
    loaded_ms: list[float]

    @property
    def added_median(self) -> float:
        return statistics.median(self.loaded_ms) - self.idle_ms

    @property
    def added_p95(self) -> float:
        return sorted(self.loaded_ms)[int(0.95 * (len(self.loaded_ms) - 1))] - self.idle_ms


def _ip_tx_bytes(host: Host, ifaces: tuple[str, ...]) -> int:
    """IP-layer bytes sent: the interfaces' counters less 14 bytes of Ethernet a frame."""
    total = 0
    for iface in ifaces:
        stats = Path(f"/sys/class/net/{iface}/statistics")
        out = host.run(["cat", str(stats / "tx_bytes"), str(stats / "tx_packets")]).stdout.split()
        total += int(out[0]) - 14 * int(out[1])
    return total


def _rtts(text: str) -> list[float]:
    return [float(m) for m in re.findall(r"time=([\d.]+) ms", text)]


def measure(lab: Lab, x: ShareHosts, *, seconds: int = 15, omit: int = 0) -> ShareRun:
    """`omit`: seconds at the start of the pulls that their goodput leaves out (slow start)."""
    internet = x.internet
    servers = [
        internet.spawn(["iperf3", "-s", "-p", str(port), "--forceflush"], name=f"iperf-{port}")
        for port in (5201, 5202)
    ]
    lab.wait_for(
        lambda: all("listening" in s.log() for s in servers), timeout=10, what="iperf3 servers"
    )
    idle = _rtts(x.client.run(["ping", "-c", "20", "-i", "0.05", "203.0.113.2"]).stdout)
    before = _ip_tx_bytes(x.provider, ("isp0", "isp1"))
    t0 = time.monotonic()
    pulls = [
        host.spawn(
            [
                "iperf3",
                "-c",
                "203.0.113.2",
                "-p",
                str(port),
                "-R",
                "-P",
                "4",
                "-t",
                str(seconds),
                "-O",
                str(omit),
                "-J",
            ],
            name=f"pull-{host.name}",
        )
        for host, port in ((x.client, 5201), (x.wgclient, 5202))
    ]
    time.sleep(3)  # past slow start
    count = int((seconds - 5) / 0.05)
    loaded = _rtts(
        x.client.run(
            ["ping", "-c", str(count), "-i", "0.05", "203.0.113.2"], timeout=seconds + 10
        ).stdout
    )
    lab.wait_for(
        lambda: not any(p.alive() for p in pulls), timeout=seconds + 30, what="iperf3 to finish"
    )
    elapsed = time.monotonic() - t0
    wire = (_ip_tx_bytes(x.provider, ("isp0", "isp1")) - before) * 8 / elapsed / 1e6
    mbps = {}
    for name, p in zip(("tidewire", "wireguard-go"), pulls, strict=True):
        end = json.loads(p.log()[p.log().index("{") :])["end"]
        mbps[name] = float(end["sum_received"]["bits_per_second"]) / 1e6
    for s in servers:
        s.popen.terminate()
    return ShareRun(mbps, wire, statistics.median(idle), loaded)


def build(lab: Lab, share: dict[str, object] | None, *, with_wireguard_go: bool = True) -> ExitLab:
    return build_exit_lab(lab, share=share, with_wireguard_go=with_wireguard_go)


def build_wireguard_go_provider(lab: Lab) -> WgProviderLab:
    """The exit lab's hosts and clients, with Debian's wireguard-go as the provider."""
    client, wgclient, provider, _, internet, _ = exit_lab_hosts(lab)
    k_prov, p_prov = genkey()
    k_cli, p_cli = genkey()
    k_wg, p_wg = genkey()
    peers = [
        {"PublicKey": p_cli, "AllowedIPs": "10.99.0.2/32"},
        {"PublicKey": p_wg, "AllowedIPs": "10.99.0.3/32"},
    ]
    conf = wg_conf(private_key=k_prov, address=["10.99.0.1/24"], listen_port=51820, peers=peers)
    wg_quick_up(lab, provider, "wgprov0", conf)
    provider.run("sysctl -qw net.ipv4.ip_forward=1")  # the provider's namespace, not the host
    provider.run(["nft", "-f", "-"], input=NAT)
    peer = {
        "public_key": p_prov,
        "endpoint": "198.51.100.1:51820",
        "allowed_ips": ["0.0.0.0/0"],
        "mode": "wireguard",
    }
    toml = tidewire_toml(
        name="twcli", private_key=k_cli, address=["10.99.0.2/32"], lab=lab, peers=[peer]
    )
    lab.tidewire(client, "twcli", toml)
    address = ["10.99.0.3/32", "fd99::3/128"]
    wg_client_up(lab, wgclient, "wgexit0", private_key=k_wg, address=address, provider=p_prov)
    return WgProviderLab(client, wgclient, provider, internet)
