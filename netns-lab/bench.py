"""Benchmark: tidewire, userspace WireGuard and OpenVPN over the same kind of veth pair, in one run.

    [a] 192.168.250.1 ---- veth ---- 192.168.250.2 [b]     tunnel 10.250.0.1 <-> 10.250.0.2

Systems: tidewire (WireGuard mode, plain UDP), tidewire-masked, -tcp and -tls (native mode
with only that skin's URL: `mask/tw`, `tcp/tw`, `tls/tw` are ratios to plain),
tidewire-share (plain, with each end's sending through its [share] queue: `shar/tw`), another
tidewire build (--baseline), Debian's wireguard-go, a current wireguard-go
(`wireguard-go-current`) and boringtun (built on first use: netns-lab/wg_peers.py),
OpenVPN. For each system: iperf3 TCP through the tunnel (single stream and 4 streams,
each direction), ping RTT through the tunnel when idle, resident memory of both tunnel
processes, and CPU seconds per gigabyte moved. Ratios are against the WireGuard
implementations and OpenVPN measured in the same invocation. Figures on a shared machine
are noisy: compare ratios from one run, not absolute numbers across runs.

    sudo .venv/bin/python netns-lab/bench.py [--seconds 10] [--json FILE] [--baseline TIDEWIRE]

`--baseline` also measures another build of tidewire (e.g. a worktree of an older
commit with its own .venv: `--baseline ../old/.venv/bin/tidewire`), so a change's
cost is a ratio from one run (`tw/base`).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "scenarios"))

from bench_peers import IMPLEMENTATIONS, Setup, setup_openvpn, userspace, wg_up
from lab import TIDEWIRE, Host, Lab, LabError, genkey, tidewire_toml
from wg import wg_conf

from tidewire.cli.main import LEAN

CLK_TCK = os.sysconf("SC_CLK_TCK")
LEAN_UP = LEAN[-1]  # `tidewire up` re-executes itself with this command line


def pids_named(host: Host, names: tuple[str, ...]) -> list[int]:
    out = host.run(["ip", "netns", "pids", host.netns]).stdout.split()
    found = []
    for pid in out:
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        named = any(f"/{n} " in cmdline or cmdline.startswith(n) for n in names)
        if named or comm in names or ("tidewire" in names and LEAN_UP in cmdline):
            found.append(int(pid))
    return found


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def iperf(
    client: Host, addr: str, *, seconds: int, streams: int, reverse: bool
) -> tuple[float, int]:
    args = ["iperf3", "-c", addr, "-t", str(seconds), "-P", str(streams), "-J"]
    if reverse:
        args.append("-R")
    out = client.run(args, timeout=seconds + 60, check=False)
    if out.returncode != 0:
        return 0.0, 0
    end = json.loads(out.stdout)["end"]
    return end["sum_received"]["bits_per_second"] / 1e6, int(end["sum_received"]["bytes"])


def ping_ms(host: Host, addr: str, *, interval: float = 0.05, count: int = 30) -> float:
    """Mean ping RTT. At the default 50 ms interval the tunnel process is idle between
    pings (cold caches on this VM); at 2 ms it stays warm, as on a busy link."""
    out = host.run(
        ["ping", "-c", str(count), "-i", str(interval), "-W", "1", addr], check=False, timeout=30
    ).stdout
    m = re.search(r"= [\d.]+/([\d.]+)/", out)
    return float(m.group(1)) if m else float("nan")


TIDEWIRE_ARGS: list[str] = []  # extra `tidewire up` arguments, e.g. --tun-tso
BASELINE: list[str] = []  # the `tidewire` command of another build, for --baseline


def setup_tidewire(
    lab: Lab,
    a: Host,
    b: Host,
    *,
    binary: str = TIDEWIRE,
    names: tuple[str, str] = ("twbench0", "twbench1"),
    extra: tuple[str, ...] = (),
    share: dict[str, str] | None = None,
) -> tuple[Callable[[], None], tuple[str, ...]]:
    lab.tidewire_pair(
        a,
        b,
        endpoint="192.168.250.2:51821",
        tunnel_a=["10.250.0.1/24"],
        tunnel_b=["10.250.0.2/24"],
        mode="wireguard",
        names=names,
        args=(*TIDEWIRE_ARGS, *extra),
        binary=binary,
        share=share,
    )
    return (lambda: None), ("tidewire",)


SKIN_PORTS = {"masked": 8443, "tcp": 8443, "tls": 443}
SHARE_RATE = "40 Gbit/s"  # tidewire-share's pacer: above what the veth pair carries


def skinned(skin: str) -> Setup:
    """The same pair in native mode under a skin: b listens on it, a has only its URL."""

    def setup(lab: Lab, a: Host, b: Host) -> tuple[Callable[[], None], tuple[str, ...]]:
        port = SKIN_PORTS[skin]
        lab.tidewire_pair(
            a,
            b,
            endpoint=f"{skin}://192.168.250.2:{port}",
            tunnel_a=["10.250.0.1/24"],
            tunnel_b=["10.250.0.2/24"],
            names=(f"tw{skin}0", f"tw{skin}1"),
            args=tuple(TIDEWIRE_ARGS),
            b_listen=["udp://0.0.0.0:51821", f"{skin}://0.0.0.0:{port}"],
        )
        return (lambda: None), ("tidewire",)

    return setup


def setup_python_plane(lab: Lab, a: Host, b: Host) -> tuple[Callable[[], None], tuple[str, ...]]:
    """The same tunnel on the Python data plane (`tidewire` runs the native one when built)."""
    return setup_tidewire(lab, a, b, names=("twpy0", "twpy1"), extra=("--dataplane", "python"))


def setup_share(lab: Lab, a: Host, b: Host) -> tuple[Callable[[], None], tuple[str, ...]]:
    """The same tunnel with each end's sending through its [share] queue (a client's
    `upload`: FQ-CoDel and a pacer) at a rate above the link's: what the queues cost."""
    return setup_tidewire(lab, a, b, names=("twshare0", "twshare1"), share={"upload": SHARE_RATE})


def setup_baseline(lab: Lab, a: Host, b: Host) -> tuple[Callable[[], None], tuple[str, ...]]:
    """The same tunnel, run by another build of tidewire (`--baseline PATH`)."""
    return setup_tidewire(lab, a, b, binary=BASELINE[0], names=("twbase0", "twbase1"))


SYSTEMS = {
    "tidewire": setup_tidewire,
    "tidewire-python": setup_python_plane,
    "tidewire-masked": skinned("masked"),
    "tidewire-tcp": skinned("tcp"),
    "tidewire-tls": skinned("tls"),
    "tidewire-share": setup_share,
    "baseline": setup_baseline,
    "wireguard-go": userspace(IMPLEMENTATIONS["wireguard-go"]),
    "wireguard-go-current": userspace(IMPLEMENTATIONS["wireguard-go-current"]),
    "boringtun": userspace(IMPLEMENTATIONS["boringtun"]),
    "openvpn": setup_openvpn,
}


def measure(name: str, seconds: int) -> dict[str, float]:
    with Lab("bench") as lab:
        a, b = lab.host("a"), lab.host("b")
        lab.link(a, b, "192.168.250.1/24", "192.168.250.2/24")
        raw_rtt = ping_ms(a, "192.168.250.2")
        raw_rtt_busy = ping_ms(a, "192.168.250.2", interval=0.002, count=500)
        teardown, procnames = SYSTEMS[name](lab, a, b)
        try:
            lab.wait_for(
                lambda: a.run("ping -c 1 -W 1 10.250.0.2", check=False).returncode == 0,
                timeout=30,
                what=f"{name} tunnel",
            )
            pids = pids_named(a, procnames) + pids_named(b, procnames)
            result: dict[str, float] = {
                "raw_rtt_ms": raw_rtt,
                "tunnel_rtt_ms": ping_ms(a, "10.250.0.2"),
            }
            result["added_rtt_ms"] = result["tunnel_rtt_ms"] - raw_rtt
            busy = ping_ms(a, "10.250.0.2", interval=0.002, count=500)
            result["added_rtt_busy_ms"] = busy - raw_rtt_busy
            server = b.spawn(["iperf3", "-s", "--forceflush"], name="iperf3")
            lab.wait_for(lambda: "listening" in server.log(), timeout=10, what="iperf3 server")
            cpu0 = sum(cpu_seconds(p) for p in pids)
            moved = 0
            for streams in (1, 4):
                for reverse in (False, True):
                    key = f"mbps_{streams}x_{'b_to_a' if reverse else 'a_to_b'}"
                    result[key], nbytes = iperf(
                        a, "10.250.0.2", seconds=seconds, streams=streams, reverse=reverse
                    )
                    moved += nbytes
                    time.sleep(0.5)
            cpu = sum(cpu_seconds(p) for p in pids) - cpu0
            result["cpu_s_per_gb"] = cpu / (moved / 1e9) if moved else float("nan")
            result["rss_mib_per_end"] = sum(rss_kib(p) for p in pids) / 1024 / max(1, len(pids))
            result["processes"] = len(pids)
            return result
        finally:
            teardown()


def _peer_ips(n: int) -> list[str]:
    return [f"10.251.{i // 250}.{i % 250 + 1}/32" for i in range(n)]


def memory_with_peers(name: str, n: int) -> float:
    """Resident MiB of one idle tunnel process with `n` configured peers (no endpoints)."""
    keys = [genkey()[1] for _ in range(n)]
    with Lab("mem") as lab:
        host = lab.host("m")
        private = genkey()[0]
        if name.startswith("tidewire") or name == "baseline":
            peers = [
                {"public_key": k, "allowed_ips": [ip]}
                for k, ip in zip(keys, _peer_ips(n), strict=True)
            ]
            text = tidewire_toml(
                name="twmem0", private_key=private, address=["10.250.0.1/16"], lab=lab, peers=peers
            )
            binary = BASELINE[0] if name == "baseline" else TIDEWIRE
            lab.tidewire(host, "twmem0", text, binary=binary, start_timeout=90)
            procnames: tuple[str, ...] = ("tidewire",)
        else:
            wg_peers = [
                {"PublicKey": k, "AllowedIPs": ip} for k, ip in zip(keys, _peer_ips(n), strict=True)
            ]
            conf = wg_conf(
                private_key=private, address=["10.250.0.1/16"], listen_port=None, peers=wg_peers
            )
            impl = IMPLEMENTATIONS[name]
            wg_up(lab, host, impl.ifnames[0], conf, impl)
            procnames = (impl.comm,)
        time.sleep(2)
        pids = pids_named(host, procnames)
        return sum(rss_kib(p) for p in pids) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--seconds", type=int, default=10, help="iperf3 duration per test (default 10)"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument(
        "--only",
        nargs="*",
        choices=list(SYSTEMS),
        default=[s for s in SYSTEMS if s != "baseline"],
    )
    parser.add_argument(
        "--baseline",
        metavar="TIDEWIRE",
        help="also measure this `tidewire` command (another build) as 'baseline'",
    )
    parser.add_argument(
        "--peers", type=int, default=1000, help="peers for the memory figure (default 1000)"
    )
    parser.add_argument(
        "--tun-tso", action="store_true", help="run tidewire with TSO reads from the TUN"
    )
    args = parser.parse_args()
    if args.tun_tso:
        TIDEWIRE_ARGS.append("--tun-tso")
    if args.baseline:
        BASELINE.append(args.baseline)
        if "baseline" not in args.only:
            args.only.insert(1, "baseline")
    for name in [n for n in args.only if n in IMPLEMENTATIONS]:
        why = IMPLEMENTATIONS[name].ensure()  # builds the current wireguard-go, boringtun
        if why is not None:
            print(f"bench: skipping {name}: {why}", file=sys.stderr)
            args.only.remove(name)
    results = {}
    for name in list(args.only):
        try:
            results[name] = measure(name, args.seconds)
        except (LabError, RuntimeError, subprocess.SubprocessError) as exc:
            print(f"bench: {name} failed, left out: {exc}", file=sys.stderr)  # logs above
            args.only.remove(name)
    for name in args.only:
        if name != "openvpn":  # an OpenVPN peer-to-peer tunnel has exactly one peer
            results[name][f"rss_mib_{args.peers}_peers"] = memory_with_peers(name, args.peers)
    keys = [k for k in results[args.only[0]] if k != "processes"]
    header = "".join(f"{n:>{max(14, len(n) + 1)}}" for n in args.only)
    skins = ("masked", "tcp", "tls", "share")
    labels = "".join(f"  {s[:4] + '/tw':>8}" for s in skins)
    refs = {
        "wireguard-go": "wg-go",
        "wireguard-go-current": "wg-cur",
        "boringtun": "bt",
        "openvpn": "ovpn",
        "baseline": "base",
    }
    ratios = "".join(f"  {'tw/' + r:>8}" for r in refs.values())
    print(f"\n{'figure':<24}{header}{ratios}{labels}")
    for k in keys:
        row = f"{k:<24}" + "".join(
            f"{results[n][k]:>{max(14, len(n) + 1)}.2f}"
            if k in results[n]
            else f"{'-':>{max(14, len(n) + 1)}}"
            for n in args.only
        )
        tw = results.get("tidewire", {}).get(k)
        for ref in refs:
            r = results.get(ref, {}).get(k)
            row += f"  {tw / r:>7.2f}x" if tw is not None and r else "         -"
        for skin in skins:
            v = results.get(f"tidewire-{skin}", {}).get(k)
            row += f"  {v / tw:>7.2f}x" if v is not None and tw else "         -"
        print(row)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
