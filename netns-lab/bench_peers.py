"""The other tunnels netns-lab/bench.py measures tidewire against, each set up between
the benchmark's two hosts: userspace WireGuard implementations and OpenVPN.

- wireguard-go: Debian's 0.0.20220316 (no batching, no offloads), from apt-get
  (scripts/setup);
- wireguard-go-current: wireguard-go at `WG_GO_CURRENT` (batching, UDP GSO/GRO, TUN
  TSO/GRO), by `go install` through the Go module proxy;
- boringtun: Cloudflare's boringtun-cli, by `cargo install` from crates.io.

The last two are built on first use into a cache outside the repository
(`/var/cache/tidewire-bench`, or `$TIDEWIRE_BENCH_CACHE`) and kept there. Each is brought
up by wg-quick (`WG_QUICK_USERSPACE_IMPLEMENTATION`), under its own interface names:
wireguard-go's control sockets share one folder across namespaces. OpenVPN 2.6 (Debian)
runs peer to peer with ChaCha20-Poly1305 and certificates pinned by fingerprint.
"""

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lab import Host, Lab, genkey
from wg import wg_conf, wg_quick_up

CACHE = Path(os.environ.get("TIDEWIRE_BENCH_CACHE", "/var/cache/tidewire-bench"))
WG_GO_CURRENT = "v0.0.0-20250521234502-f333402bd9cb"  # the issue's; the proxy may serve newer
WG_GO_COMM = "wg-go-" + WG_GO_CURRENT.rsplit("-", 1)[1][:7]  # process name, under 16 bytes
GO = "/usr/local/go/bin/go"
BUILD_TIMEOUT = 1200  # seconds: boringtun's first build compiles about 100 crates on 2 cores


Started = tuple[Callable[[], None], tuple[str, ...]]  # a teardown, the process names
Setup = Callable[[Lab, Host, Host], Started]


@dataclass(frozen=True)
class Userspace:
    system: str  # the benchmark's name for it
    comm: str  # its process name (what bench.py measures)
    ifnames: tuple[str, str]  # interface names of the two ends
    binary: Path | None = None  # None: on the PATH (Debian's)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def command(self) -> str:
        return str(self.binary) if self.binary else self.comm

    def ensure(self) -> str | None:
        """Build or install it if needed: None when it is there, else why not (one line)."""
        if self.binary is None:
            found = shutil.which(self.comm)
            return None if found else f"{self.comm} is not installed (run scripts/setup)"
        if self.binary.exists():
            return None
        CACHE.mkdir(parents=True, exist_ok=True)
        if self.system == "boringtun":
            return _cargo_install(self.binary)
        return _go_install(self.binary)


def _run_logged(argv: list[str], *, env: dict[str, str], log: Path) -> bool:
    with log.open("wb") as out:
        try:
            done = subprocess.run(
                argv,
                cwd=CACHE,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=BUILD_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
    return done.returncode == 0


def _go_install(binary: Path) -> str | None:
    if not Path(GO).exists():
        return f"cannot build wireguard-go {WG_GO_CURRENT}: no Go at {GO}"
    gobin = CACHE / "gobin"
    env = {
        **os.environ,
        "GOBIN": str(gobin),
        "GOPATH": str(CACHE / "go"),
        "GOCACHE": str(CACHE / "gocache"),
        "GOFLAGS": "-modcacherw",
    }
    log = CACHE / "go-install.log"
    if not _run_logged(
        [GO, "install", f"golang.zx2c4.com/wireguard@{WG_GO_CURRENT}"], env=env, log=log
    ):
        return f"go install of wireguard-go {WG_GO_CURRENT} failed (see {log})"
    binary.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(gobin / "wireguard", binary)  # renamed: its process name tells it apart
    return None


def _cargo_install(binary: Path) -> str | None:
    cargo = shutil.which("cargo") or str(Path.home() / ".cargo/bin/cargo")
    if not Path(cargo).exists():
        return "cannot build boringtun: no cargo on the PATH or in ~/.cargo/bin"
    env = {**os.environ, "CARGO_TARGET_DIR": str(CACHE / "target")}
    log = CACHE / "cargo-install.log"
    argv = [cargo, "install", "boringtun-cli", "--root", str(CACHE)]
    if not _run_logged(argv, env=env, log=log) or not binary.exists():
        return f"cargo install boringtun-cli failed (see {log})"
    return None


IMPLEMENTATIONS = {
    "wireguard-go": Userspace("wireguard-go", "wireguard-go", ("wgbench0", "wgbench1")),
    "wireguard-go-current": Userspace(
        "wireguard-go-current", WG_GO_COMM, ("wgcur0", "wgcur1"), binary=CACHE / "bin" / WG_GO_COMM
    ),
    # WG_SUDO: boringtun-cli keeps root instead of dropping to nobody, which wg-quick's
    # later `wg setconf` on its control socket needs
    "boringtun": Userspace(
        "boringtun",
        "boringtun-cli",
        ("btbench0", "btbench1"),
        binary=CACHE / "bin" / "boringtun-cli",
        env={"WG_SUDO": "true"},
    ),
}


def userspace(impl: Userspace) -> Setup:
    """A userspace WireGuard pair (netns-lab/wg_peers.py), each end brought up by wg-quick."""

    def setup(lab: Lab, a: Host, b: Host) -> Started:
        ka, pa = genkey()
        kb, pb = genkey()
        ends = [
            (
                a,
                ka,
                "10.250.0.1/24",
                51820,
                {"PublicKey": pb, "AllowedIPs": "10.250.0.2/32", "Endpoint": "192.168.250.2:51821"},
            ),
            (b, kb, "10.250.0.2/24", 51821, {"PublicKey": pa, "AllowedIPs": "10.250.0.1/32"}),
        ]
        for (host, key, addr, port, peer), ifname in zip(ends, impl.ifnames, strict=True):
            conf = wg_conf(private_key=key, address=[addr], listen_port=port, peers=[peer])
            wg_up(lab, host, ifname, conf, impl)
        return (lambda: None), (impl.comm,)

    return setup


def wg_up(lab: Lab, host: Host, ifname: str, conf: str, impl: Userspace) -> Path:
    """Bring `conf` up as `ifname` with `impl`; the config file's path (for wg-quick down)."""
    return wg_quick_up(
        lab, host, ifname, conf, implementation=impl.command, comm=impl.comm, env=impl.env
    )


def _cert(lab: Lab, name: str) -> str:
    key, crt = lab.tmp / f"{name}.key", lab.tmp / f"{name}.crt"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-keyout",
            str(key),
            "-out",
            str(crt),
            "-days",
            "2",
            "-nodes",
            "-subj",
            f"/CN={name}",
        ],
        check=True,
        capture_output=True,
    )
    fp = subprocess.run(
        ["openssl", "x509", "-fingerprint", "-sha256", "-noout", "-in", str(crt)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return fp.strip().split("=", 1)[1]


def setup_openvpn(lab: Lab, a: Host, b: Host) -> Started:
    fingerprints = {"a": _cert(lab, "ovpn-a"), "b": _cert(lab, "ovpn-b")}
    # (host, this end, the other end, role flags, ports, tunnel addresses)
    ends = [
        (a, "a", "b", ["--tls-server", "--dh", "none"], ("1194", "1195"), ("1", "2")),
        (b, "b", "a", ["--tls-client"], ("1195", "1194"), ("2", "1")),
    ]
    for host, me, peer, role, (lport, rport), (local, remote) in ends:
        host.spawn(
            [
                "openvpn",
                *["--dev-type", "tun", "--dev", f"ovpnbench{ord(me) - ord('a')}"],
                *["--proto", "udp", "--lport", lport, "--rport", rport],
                *["--remote", f"192.168.250.{remote}"],
                *["--data-ciphers", "CHACHA20-POLY1305", "--cipher", "CHACHA20-POLY1305"],
                *["--verb", "3", "--ping", "10", "--ping-restart", "60"],
                *role,
                *["--ifconfig", f"10.250.0.{local}", f"10.250.0.{remote}"],
                *["--cert", str(lab.tmp / f"ovpn-{me}.crt")],
                *["--key", str(lab.tmp / f"ovpn-{me}.key")],
                *["--peer-fingerprint", fingerprints[peer]],
            ],
            name=f"openvpn-{me}",
        )
    procs = lab.procs[-2:]
    lab.wait_for(
        lambda: all("Initialization Sequence Completed" in p.log() or not p.alive() for p in procs),
        timeout=30,
        what="OpenVPN to connect",
    )
    if not all(p.alive() for p in procs):
        raise RuntimeError("OpenVPN exited:\n" + lab.logs())
    return (lambda: None), ("openvpn",)
