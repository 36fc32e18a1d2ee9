"""The lab's NAT routers, and a check that each behaves as it claims (RFC 4787 terms).

    [a] 10.0.1.2 -- 10.0.1.1 [nata] 198.51.100.2 -- 198.51.100.1 .
                                                               [inet] 203.0.113.1 -- .2 [m]
    [b] 10.0.2.2 -- 10.0.2.1 [natb] 192.0.2.2    -- 192.0.2.1    '

Two kinds of NAT, each in its own router namespace (forwarding is switched on in the
namespace only, never on the host):

- "cone": endpoint-independent mapping and filtering (full cone). The client's UDP
  port PORT is always CONE_PORT[router] outside (a static SNAT), and anything sent to
  that public port comes in to the client (a DNAT), whoever sends it.
- "symmetric": `masquerade random`: every new (destination address, port) gets its own
  random public port, and only the destination a mapping was made for may answer
  (conntrack's address- and port-dependent filtering).

`check` proves it with plain UDP before any tidewire runs: the client sends from one
port to two destinations, which report the source they saw (the same public port
behind a cone NAT, two different ones behind a symmetric NAT), and a third host sends
to the port the first destination saw, unsolicited (the client receives it behind a
cone NAT only).
"""

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lab import Host, Lab, Proc

TOOL = str(Path(__file__).resolve().parent / "tools" / "udp_probe.py")
PORT = 51820  # the clients' listen port
CONE_PORT = {"nata": 40001, "natb": 40002}


@dataclass
class NatLab:
    kind: str
    a: Host
    b: Host
    m: Host
    inet: Host
    nata: Host
    natb: Host
    public: dict[str, str]  # router name -> its public address


def build_nat_lab(lab: Lab, kind: str) -> NatLab:
    if kind not in ("cone", "symmetric"):
        raise ValueError(f"no NAT of kind {kind!r}")
    a, b, m, inet = lab.host("a"), lab.host("b"), lab.host("m"), lab.host("inet")
    nata, natb = lab.host("nata"), lab.host("natb")
    lab.link(inet, m, "203.0.113.1/24", "203.0.113.2/24", a_if="m0", b_if="eth0")
    m.run("ip route add default via 203.0.113.1")
    inet.run("sysctl -qw net.ipv4.ip_forward=1")
    public = {}
    for router, client, wan, lan in (
        (nata, a, ("198.51.100.1", "198.51.100.2"), "10.0.1"),
        (natb, b, ("192.0.2.1", "192.0.2.2"), "10.0.2"),
    ):
        lab.link(inet, router, f"{wan[0]}/24", f"{wan[1]}/24", a_if=router.name, b_if="wan0")
        lab.link(router, client, f"{lan}.1/24", f"{lan}.2/24", a_if="lan0", b_if="eth0")
        router.run(f"ip route add default via {wan[0]}")
        client.run(f"ip route add default via {lan}.1")
        router.run("sysctl -qw net.ipv4.ip_forward=1")
        router.run(
            ["nft", "-f", "-"],
            input=_rules(kind, client=f"{lan}.2", public=wan[1], port=CONE_PORT[router.name]),
        )
        public[router.name] = wan[1]
    return NatLab(kind, a, b, m, inet, nata, natb, public)


def _rules(kind: str, *, client: str, public: str, port: int) -> str:
    if kind == "cone":
        nat = f"""
    chain prerouting {{
        type nat hook prerouting priority dstnat; policy accept;
        iifname "wan0" ip daddr {public} udp dport {port} dnat ip to {client}:{PORT}
    }}
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        oifname "wan0" ip saddr {client} udp sport {PORT} snat ip to {public}:{port}
        oifname "wan0" masquerade
    }}"""
    else:
        nat = """
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "wan0" masquerade random
    }"""
    # the filter of a home router: nothing comes in from outside that no mapping admits
    return f"""table ip labnat {{{nat}
    chain forward {{
        type filter hook forward priority filter; policy drop;
        iifname "lan0" accept
        ct state established,related accept
        ct status dnat accept
    }}
}}
"""


def _listen(host: Host, port: int, seconds: float) -> Proc:
    return host.spawn(
        [sys.executable, TOOL, "listen", str(port), str(seconds)], name=f"udp-{host.name}"
    )


def check(lab: Lab, net: NatLab) -> dict[str, object]:
    """What the NAT in front of `a` does, measured: the public sources two destinations
    saw for one client socket, and whether an unsolicited datagram got in."""
    seen_m, seen_inet = _listen(net.m, 9000, 3), _listen(net.inet, 9001, 3)
    time.sleep(0.5)
    net.a.run([sys.executable, TOOL, "send", str(PORT), "203.0.113.2:9000", "203.0.113.1:9001"])
    lab.wait_for(
        lambda: not seen_m.alive() and not seen_inet.alive(),
        timeout=10,
        what="the UDP listeners",
    )
    src_m = seen_m.log().split()
    src_inet = seen_inet.log().split()
    assert src_m and src_inet, f"a's datagrams did not arrive: {src_m} {src_inet}"
    # an unsolicited datagram from b's router to the mapping m saw
    inbound = _listen(net.a, PORT, 3)
    time.sleep(0.5)
    net.natb.run([sys.executable, TOOL, "send", "9100", src_m[0]])
    lab.wait_for(lambda: not inbound.alive(), timeout=10, what="a's listener")
    return {
        "to_m": src_m[0],
        "to_inet": src_inet[0],
        "unsolicited_in": bool(inbound.log().split()),
    }
