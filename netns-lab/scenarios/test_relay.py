"""A client reaches its exit only through a relay (docs/protocol/relay.md):

[c] .2 -- 198.51.100.0/24 -- .1 [r] .1 -- 192.0.2.0/24 -- .2 [e] .1 -- 203.0.113.0/24 -- .2 [net]
client               relay ([relay] enabled)    exit ([exit] enabled)        HTTP server

r does not forward IP (its namespace keeps ip_forward at 0) and c has no route to e's
network, so the only way from c to e is the relay. c's peer e has the one endpoint
relay://R: c's end-to-end session with e (an ordinary native session with receipts)
travels in relay frames inside c's link with r, then inside r's link with e.

Checked: ping and an HTTP download through e's exit role; a capture on e's interfaces
never shows c's address (only r's, and e's own towards the internet); a raw capture of
every interface of r never contains the marker string the HTTP body is made of; the
per-pair byte cap stops the flow when reached, counted per pair and in the drops.
"""

import hashlib
import sys
from pathlib import Path
from typing import Any

from common import PY, TOOLS, ping
from lab import Host, Lab, Node, genkey, tidewire_toml

sys.path.insert(0, str(TOOLS))
import rawcap

MARKER = b"tidewire-relay-marker-7f3a9c\n"
CAP = 6_000_000  # the relay's pair_cap, bytes


def b64url(key: str) -> str:
    return key.replace("+", "-").replace("/", "_").rstrip("=")


def build(lab: Lab, *, cap: int = CAP) -> dict[str, Any]:
    c, r, e, net = lab.host("c"), lab.host("r"), lab.host("e"), lab.host("internet")
    lab.link(c, r, "198.51.100.2/24", "198.51.100.1/24", a_if="eth0", b_if="down0")
    lab.link(r, e, "192.0.2.1/24", "192.0.2.2/24", a_if="up0", b_if="isp0")
    lab.link(e, net, "203.0.113.1/24", "203.0.113.2/24", a_if="wan0", b_if="eth0")
    e.run("ip route add default via 203.0.113.2")
    c.run("ip route add default via 198.51.100.1")
    assert r.run("sysctl -n net.ipv4.ip_forward").stdout.strip() == "0"
    www = lab.tmp / "www"
    www.mkdir()
    (www / "small.txt").write_bytes(MARKER * 70_000)  # about 2 MB
    (www / "large.txt").write_bytes(MARKER * 350_000)  # about 10 MB: past the cap
    net.spawn(
        [PY, "-m", "http.server", "80", "--bind", "203.0.113.2", "--directory", str(www)],
        name="http",
    )
    (kc, pc), (kr, pr), (ke, pe) = genkey(), genkey(), genkey()
    relay = (
        tidewire_toml(
            name="twr",
            private_key=kr,
            address=["10.97.0.1/32"],
            lab=lab,
            listen_port=51820,
            peers=[
                {"public_key": pc, "allowed_ips": []},
                {
                    "public_key": pe,
                    "allowed_ips": [],
                    "endpoint": "192.0.2.2:51820",
                    "persistent_keepalive": 25,
                },
            ],
        )
        + f'\n[relay]\nenabled = true\npair_cap = "{cap} B"\n'
    )
    exit_ = tidewire_toml(
        name="twe",
        private_key=ke,
        address=["10.99.0.1/24"],
        lab=lab,
        listen_port=51820,
        peers=[
            {"public_key": pr, "allowed_ips": []},
            {"public_key": pc, "allowed_ips": ["10.99.0.2/32"]},
        ],
        exit={"enabled": True},
    )
    client = tidewire_toml(
        name="twc",
        private_key=kc,
        address=["10.99.0.2/32"],
        lab=lab,
        peers=[
            {
                "public_key": pr,
                "allowed_ips": [],
                "endpoint": "198.51.100.1:51820",
                "persistent_keepalive": 25,
            },
            {
                "public_key": pe,
                "endpoints": [f"relay://{b64url(pr)}"],
                "allowed_ips": ["0.0.0.0/0"],
                "provider": True,
            },
        ],
    )
    nodes = {
        "r": lab.tidewire(r, "twr", relay),
        "e": lab.tidewire(e, "twe", exit_),
        "c": lab.tidewire(c, "twc", client),
    }
    return {"hosts": {"c": c, "r": r, "e": e, "net": net}, "nodes": nodes, "keys": (pc, pr, pe)}


def start_capture(lab: Lab, host: Host, name: str) -> tuple[Any, Path]:
    out = lab.tmp / f"{name}.bin"
    proc = host.spawn([PY, str(TOOLS / "rawcap.py"), str(out)], name=f"cap-{name}")
    lab.wait_for(lambda: "capturing" in proc.log(), timeout=10, what=f"the capture on {name}")
    return proc, out


def stop_capture(lab: Lab, proc: Any) -> None:
    proc.popen.terminate()
    proc.popen.wait(timeout=10)


def ipv4_addresses(frames: list[tuple[str, bytes]]) -> set[str]:
    """Every IPv4 source and destination in the captured frames (Ethernet or bare IP)."""
    import socket

    seen = set()
    for _, frame in frames:
        for ip in (frame[14:] if frame[12:14] == b"\x08\x00" else b"", frame):
            if len(ip) >= 20 and ip[0] == 0x45:
                seen.add(socket.inet_ntoa(ip[12:16]))
                seen.add(socket.inet_ntoa(ip[16:20]))
                break
    return seen


def download(host: Host, name: str, *, timeout: float) -> tuple[int, bytes]:
    result = host.lab.run_in(
        host,
        ["curl", "-sS", "--max-time", str(timeout), f"http://203.0.113.2/{name}"],
        timeout=timeout + 10,
        check=False,
    )
    return result.returncode, result.stdout.encode()


def relay_status(node: Node) -> dict[str, Any]:
    status = node.status()["relay"]
    assert status is not None
    return status  # type: ignore[no-any-return]


def test_two_hop_privacy_and_the_pair_cap() -> None:
    with Lab("relay") as lab:
        x = build(lab)
        c, r, e = x["hosts"]["c"], x["hosts"]["r"], x["hosts"]["e"]
        pc, _, pe = x["keys"]
        assert not ping(c, "192.0.2.2", count=1, check=False)  # no way to e but the relay
        cap_r, bin_r = start_capture(lab, r, "relay")
        cap_e, bin_e = start_capture(lab, e, "exit")
        lab.wait_for(
            lambda: ping(c, "203.0.113.2", count=1, check=False),
            timeout=30,
            what="c to ping the internet through r and e",
        )
        ping(c, "203.0.113.2", count=5)
        code, body = download(c, "small.txt", timeout=60)
        assert code == 0 and body == MARKER * 70_000, f"curl exited {code}, {len(body)} bytes"
        stop_capture(lab, cap_r)
        stop_capture(lab, cap_e)

        # the client's path to e is the relayed one; e learned it from authenticated packets
        peers = {p["public_key"]: p for p in x["nodes"]["c"].status()["peers"]}
        assert peers[pe]["active"]["transport"] == "relay"
        e_peers = {p["public_key"]: p for p in x["nodes"]["e"].status()["peers"]}
        assert e_peers[pc]["active"]["transport"] == "relay"
        assert e_peers[pc]["tx_bytes"] > 2_000_000  # the download, sent on the relayed path

        # e's interfaces: r's address and e's own towards the internet, never c's
        seen_e = ipv4_addresses(list(rawcap.read(str(bin_e))))
        assert "192.0.2.1" in seen_e and "203.0.113.2" in seen_e
        assert "198.51.100.2" not in seen_e
        wan = [(name, f) for name, f in rawcap.read(str(bin_e)) if name == "wan0"]
        assert "198.51.100.2" not in ipv4_addresses(wan) and "10.99.0.2" not in ipv4_addresses(wan)
        # r's interfaces (both veths, its TUN, lo): the 2 MB of marker lines crossed it,
        # sealed; not one marker in any frame
        frames_r = list(rawcap.read(str(bin_r)))
        relayed = sum(len(f) for _, f in frames_r)
        assert relayed > 4_000_000, f"the relay's capture holds only {relayed} bytes"
        assert not any(MARKER[:20] in f for _, f in frames_r)
        assert not any(MARKER[:20] in f for name, f in rawcap.read(str(bin_e)) if name == "isp0")
        # the same search finds the marker where it is plaintext: on e's WAN side
        assert any(MARKER[:20] in f for _, f in wan)
        st = relay_status(x["nodes"]["r"])
        [pair] = st["pairs"]
        assert sorted(pair["ends"]) == sorted([pc, pe]) and pair["bytes"] > 2_000_000
        assert st["counters"]["forwarded"] == pair["frames"]
        assert x["nodes"]["r"].status()["peers"]  # r knows its two peers

        # past the cap: the large download stops, and the refusals are counted
        code, body = download(c, "large.txt", timeout=20)
        assert code != 0 and len(body) < len(MARKER) * 350_000
        st = relay_status(x["nodes"]["r"])
        [pair] = st["pairs"]
        assert pair["bytes"] <= CAP and pair["drops"].get("cap", 0) > 0
        assert st["drops"]["relay_cap"] == pair["drops"]["cap"]
        assert x["nodes"]["r"].status()["drops"]["relay_cap"] >= pair["drops"]["cap"]
        digest = hashlib.sha256(body).hexdigest()
        print(
            f"relayed {pair['bytes']} bytes until the cap; the large download got "
            f"{len(body)} bytes ({digest[:12]})"
        )
