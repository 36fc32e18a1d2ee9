"""The stock `wg` tools drive a tidewire node through WireGuard's userspace API:

    [tw] tidewire twu  192.168.243.1 ---- veth ---- 192.168.243.2  wireguard-go wgu [wg]
         10.79.0.1                                  10.79.0.2

tidewire starts with no peer (its socket 0600 in a 0755 directory); `wg set` adds
wireguard-go (which then answers pings), `wg show` and `wg showconf` read the node, an
allowed IP moves between peers, `wg set ... remove` and `wg syncconf` change the peers,
and a refused request changes nothing.
After each step the node's own `tidewire status --json` must say the same. A kill -9
leaves the socket behind; the next run replaces it, `tidewire down` removes it.
"""

import base64
import socket
import subprocess
from pathlib import Path
from typing import Any

from common import ping
from lab import Host, Lab, Node, genkey, tidewire_toml
from wg import wg_conf, wg_quick_down, wg_quick_up

TW, WGO = "twu0", "wgu0"
PORT = 51830


def hexkey(b64: str) -> str:
    return base64.b64decode(b64).hex()


def wg(host: Host, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return host.run(["wg", *args], check=check, timeout=15)


def dump(host: Host) -> dict[str, dict[str, str]]:
    """`wg show IFACE dump`, peers by public key (the first line is the interface's)."""
    lines = wg(host, "show", TW, "dump").stdout.splitlines()
    private, public, port, fwmark = lines[0].split("\t")
    out = {"": {"private": private, "public": public, "port": port, "fwmark": fwmark}}
    for line in lines[1:]:
        key, psk, endpoint, allowed, handshake, rx, tx, keepalive = line.split("\t")
        out[key] = {"psk": psk, "endpoint": endpoint, "allowed": allowed,
                    "handshake": handshake, "rx": rx, "tx": tx, "keepalive": keepalive}
    return out


def status_peers(node: Node) -> dict[str, dict[str, Any]]:
    return {p["public_key"]: p for p in node.status()["peers"]}


def allowed(node: Node) -> dict[str, set[str]]:
    return {k: set(p["allowed_ips"]) for k, p in status_peers(node).items()}


def routes(host: Host) -> str:
    return host.run(["ip", "route", "show", "dev", TW]).stdout


def uapi(request: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(f"/var/run/wireguard/{TW}.sock")
        s.sendall(request)
        buf = b""
        while not buf.endswith(b"\n\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    return buf


def test_wg_tools_drive_a_tidewire_node() -> None:
    with Lab("wgtools") as lab:
        tw, wgh = lab.host("tw"), lab.host("wg")
        lab.link(tw, wgh, ["192.168.243.1/24"], ["192.168.243.2/24"])
        k_tw, p_tw = genkey()
        k_wg, p_wg = genkey()
        _, p_other = genkey()
        _, p_third = genkey()
        node = lab.tidewire(
            tw,
            TW,
            tidewire_toml(
                name=TW, private_key=k_tw, address=["10.79.0.1/24"], lab=lab, listen_port=PORT
            ),
        )
        sock = Path(f"/var/run/wireguard/{TW}.sock")
        assert sock.stat().st_mode & 0o777 == 0o600
        assert sock.parent.stat().st_mode & 0o777 == 0o755
        wg_path = wg_quick_up(
            lab,
            wgh,
            WGO,
            wg_conf(
                private_key=k_wg,
                address=["10.79.0.2/24"],
                listen_port=51831,
                peers=[{"PublicKey": p_tw, "AllowedIPs": "10.79.0.1/32"}],
            ),
        )
        try:
            # wg show: the interface as the node sees it
            d = dump(tw)
            assert d[""] == {
                "private": k_tw, "public": p_tw, "port": str(PORT), "fwmark": hex(PORT)
            }
            assert len(d) == 1 and node.status()["peers"] == []

            # wg set: a WireGuard peer, with an endpoint; the tunnel then works
            wg(tw, "set", TW, "peer", p_wg, "allowed-ips", "10.79.0.2/32,10.79.5.0/24",
               "endpoint", "192.168.243.2:51831", "persistent-keepalive", "25")
            peer = status_peers(node)[p_wg]
            assert peer["mode"] == "wireguard" and peer["endpoint"] == "192.168.243.2:51831"
            assert set(peer["allowed_ips"]) == {"10.79.0.2/32", "10.79.5.0/24"}
            assert peer["persistent_keepalive"] == 25
            ping(tw, "10.79.0.2")
            d, st = dump(tw), status_peers(node)
            assert d[p_wg]["endpoint"] == "192.168.243.2:51831" and d[p_wg]["keepalive"] == "25"
            assert set(d[p_wg]["allowed"].split(",")) == {"10.79.0.2/32", "10.79.5.0/24"}
            latest = st[p_wg]["latest_handshake"]
            assert isinstance(latest, float) and abs(int(d[p_wg]["handshake"]) - latest) <= 1
            assert int(d[p_wg]["rx"]) > 0 and int(d[p_wg]["tx"]) > 0 and d[p_wg]["psk"] == "(none)"
            assert "10.79.5.0/24 " in routes(tw)

            # an allowed IP another peer holds moves, as wg set moves it
            wg(tw, "set", TW, "peer", p_other, "allowed-ips", "10.79.5.0/24")
            assert allowed(node) == {p_wg: {"10.79.0.2/32"}, p_other: {"10.79.5.0/24"}}
            assert status_peers(node)[p_other]["mode"] == "wireguard"
            ping(tw, "10.79.0.2")  # the first peer's session is untouched
            assert "10.79.5.0/24 " in routes(tw)  # the route stays: the prefix only moved
            assert "allowed IP 10.79.5.0/24 moved" in node.proc.log()

            # refused: a run-time port change, and a request with one bad line
            assert wg(tw, "set", TW, "listen-port", "40000", check=False).returncode != 0
            bad = (f"set=1\npublic_key={hexkey(p_third)}\nallowed_ip=10.79.0.2/32\n"
                   "frobnicate=1\n\n").encode()
            assert uapi(bad) == b"errno=-22\n\n"
            assert uapi(b"hello\n\n") == b"errno=-71\n\n"
            assert allowed(node) == {p_wg: {"10.79.0.2/32"}, p_other: {"10.79.5.0/24"}}
            assert node.status()["listen_port"] == PORT

            # wg showconf reads back; wg set ... remove
            conf = wg(tw, "showconf", TW).stdout
            assert f"PrivateKey = {k_tw}" in conf and f"ListenPort = {PORT}" in conf
            assert f"PublicKey = {p_other}" in conf
            wg(tw, "set", TW, "peer", p_other, "remove")
            assert set(status_peers(node)) == {p_wg}
            assert "10.79.5.0/24 " not in routes(tw)

            wg(tw, "set", TW, "peer", p_other, "allowed-ips", "10.79.5.0/24")

            # wg syncconf: the showconf of the wanted state, with one peer gone, one new
            wanted = conf.replace(p_other, p_third).replace(
                "10.79.5.0/24", "10.79.6.0/24"
            )
            path = lab.tmp / "sync.conf"
            path.write_text(wanted)
            wg(tw, "syncconf", TW, str(path))
            assert allowed(node) == {p_wg: {"10.79.0.2/32"}, p_third: {"10.79.6.0/24"}}
            ping(tw, "10.79.0.2")  # syncconf kept the live session
            assert set(dump(tw)) == {"", p_wg, p_third}
        finally:
            wg_quick_down(wgh, wg_path)
        # a killed run leaves its socket; the next run replaces it; a clean stop removes it
        node.proc.popen.kill()
        node.proc.popen.wait(timeout=10)
        assert sock.exists()
        node = lab.tidewire(tw, TW, node.config.read_text())
        assert set(dump(tw)) == {""}
        node.cli("down")
        lab.wait_for(lambda: not sock.exists(), timeout=10, what="the wg socket to go")
