"""Userspace WireGuard in the lab, brought up by wg-quick from a WireGuard config file:
Debian's wireguard-go by default, or another implementation (netns-lab/wg_peers.py)."""

from pathlib import Path

from lab import Host, Lab

WG_ENV = {
    "WG_QUICK_USERSPACE_IMPLEMENTATION": "wireguard-go",
    "WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1",
}


def wg_conf(
    *, private_key: str, address: list[str], listen_port: int | None, peers: list[dict[str, str]]
) -> str:
    lines = ["[Interface]", f"PrivateKey = {private_key}", f"Address = {', '.join(address)}"]
    if listen_port:
        lines.append(f"ListenPort = {listen_port}")
    for p in peers:
        lines.append("\n[Peer]")
        lines += [f"{k} = {v}" for k, v in p.items()]
    return "\n".join(lines) + "\n"


def wg_quick_up(
    lab: Lab,
    host: Host,
    name: str,
    conf: str,
    *,
    implementation: str = "wireguard-go",
    comm: str = "wireguard-go",
    env: dict[str, str] | None = None,
) -> Path:
    """Write `name`.conf and bring it up with `implementation` (a command wg-quick runs
    with the interface name); check a process named `comm` really runs."""
    path = lab.tmp / f"{name}.conf"
    path.write_text(conf)
    path.chmod(0o600)
    settings = {**WG_ENV, "WG_QUICK_USERSPACE_IMPLEMENTATION": implementation, **(env or {})}
    assigns = " ".join(f"{k}={v}" for k, v in settings.items())
    host.run(["sh", "-c", f"{assigns} wg-quick up {path}"], timeout=30)
    comms = host.run(["sh", "-c", "cat /proc/[0-9]*/comm 2>/dev/null"], check=False).stdout
    assert comm in comms.split(), f"wg-quick did not start {comm}"
    return path


def wg_quick_down(host: Host, path: Path) -> None:
    host.run(["wg-quick", "down", str(path)], check=False, timeout=30)


def wg_latest_handshake(host: Host, iface: str) -> int:
    out = host.run(["wg", "show", iface, "latest-handshakes"]).stdout.split()
    return int(out[1]) if len(out) >= 2 else 0
