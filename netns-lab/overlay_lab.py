"""Topologies of the overlay, shared by the scenarios and the demo: the route line
(scenarios/test_routing.py), the gossip line (test_gossip.py) and the DHT swarm
(test_discovery.py). Each builder starts the nodes and returns them with their keys.

The route line, every peer `neighbour = true`; a and c know b's endpoint, b learns theirs;
b is a relay (only a relay carries routes to others: docs/routing.md, "Stubs"):

    [a] 192.168.243.1 ---- [b] 192.168.243.2 / 192.168.244.2 ---- 192.168.244.3 [c]
        10.78.0.1              10.78.0.2                               10.78.0.3

The gossip line, no DHT anywhere; the client names the middle node in `bootstrap`:

    [client] 198.51.100.2 ---- 198.51.100.1 [middle] 203.0.113.2 ---- 203.0.113.1 [provider]

The DHT swarm: tidewire's DHT nodes and libtorrent sessions on addresses of their own:

    [provider] 203.0.113.1 ---- 203.0.113.2 [swarm] 198.51.100.1 ---- 198.51.100.2 [seeker]
                                .10-... DHT nodes (tools/dhtswarm.py)
"""

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab import Host, Lab, Node, Proc, genkey, tidewire_toml

TOOLS = Path(__file__).resolve().parent / "tools"
PROVIDER_SHARE = {"download": "40 Mbit/s", "max_clients": 10}  # common.check_provider_record


RELAY = "\n[relay]\nenabled = true\n"  # appended to a node's config: it forwards frames


def _up(
    lab: Lab, host: Host, name: str, key: str, address: str, *, extra: str = "", **config: Any
) -> Node:
    """A tidewire node on `host` with one tunnel address; `config` as tidewire_toml's,
    `extra` TOML text appended (RELAY)."""
    text = tidewire_toml(name=name, private_key=key, address=[address], lab=lab, **config)
    return lab.tidewire(host, name, text + extra)


@dataclass
class RouteLine:
    na: Node
    nb: Node
    nc: Node
    pa: str  # public keys: the overlay destinations
    pb: str
    pc: str


def build_route_line(lab: Lab) -> RouteLine:
    a, b, c = lab.host("a"), lab.host("b"), lab.host("c")
    lab.link(a, b, ["192.168.243.1/24"], ["192.168.243.2/24"])
    lab.link(b, c, ["192.168.244.2/24"], ["192.168.244.3/24"])
    (ka, pa), (kb, pb), (kc, pc) = genkey(), genkey(), genkey()

    def peer(key: str, tunnel: str, endpoint: str | None = None) -> dict[str, Any]:
        p: dict[str, Any] = {"public_key": key, "allowed_ips": [tunnel], "neighbour": True}
        if endpoint:
            p["endpoint"] = endpoint
        return p

    configs = {
        "twa": (a, ka, "10.78.0.1/24", 51820, [peer(pb, "10.78.0.2/32", "192.168.243.2:51821")]),
        "twb": (b, kb, "10.78.0.2/24", 51821, [peer(pa, "10.78.0.1/32"), peer(pc, "10.78.0.3/32")]),
        "twc": (c, kc, "10.78.0.3/24", 51822, [peer(pb, "10.78.0.2/32", "192.168.244.2:51821")]),
    }
    nodes = {
        name: _up(
            lab,
            host,
            name,
            key,
            addr,
            listen_port=port,
            peers=peers,
            extra=RELAY if name == "twb" else "",
        )
        for name, (host, key, addr, port, peers) in configs.items()
    }
    return RouteLine(nodes["twa"], nodes["twb"], nodes["twc"], pa, pb, pc)


@dataclass
class GossipLine:
    client: Host
    prov: Node
    mid: Node
    cli: Node
    client_conf: str
    provider_key: str  # private
    provider_pub: str


def build_gossip_line(lab: Lab) -> GossipLine:
    """No node has a DHT or allowed IPs for the others: the sessions carry control
    messages only. The middle node has the provider as a peer; the provider is an exit
    sharing 40 Mbit/s among 10 clients, region "lab"."""
    client, middle, provider = lab.host("client"), lab.host("middle"), lab.host("provider")
    lab.link(client, middle, "198.51.100.2/24", "198.51.100.1/24", a_if="eth0", b_if="eth0")
    lab.link(provider, middle, "203.0.113.1/24", "203.0.113.2/24", a_if="wan0", b_if="eth1")
    provider.run("ip route add default via 203.0.113.2")  # the exit's outbound interface
    (k_c, p_c), (k_m, p_m), (k_p, p_p) = genkey(), genkey(), genkey()
    no_dht = {"dht": False, "region": "lab"}
    prov = _up(
        lab,
        provider,
        "twprov",
        k_p,
        "10.99.0.1/24",
        listen_port=51820,
        peers=[{"public_key": p_m}],
        exit={"enabled": True},
        share=PROVIDER_SHARE,
        discovery=no_dht,
    )
    mid = _up(
        lab,
        middle,
        "twmid",
        k_m,
        "10.98.0.1/32",
        listen_port=51820,
        peers=[
            {"public_key": p_c},
            {"public_key": p_p, "endpoint": "203.0.113.1:51820", "persistent_keepalive": 25},
        ],
        discovery=no_dht,
    )
    client_conf = tidewire_toml(
        name="twcli",
        private_key=k_c,
        address=["10.98.0.2/32"],
        lab=lab,
        discovery={**no_dht, "bootstrap": [f"{p_m}@udp://198.51.100.1:51820"]},
    )
    cli = lab.tidewire(client, "twcli", client_conf)
    return GossipLine(client, prov, mid, cli, client_conf, k_p, p_p)


@dataclass
class DhtSwarm:
    swarm: Host
    seeker: Host
    prov: Node
    seek: Node
    seek_conf: str
    provider_key: str  # private
    provider_pub: str
    first: str  # the first swarm node's address, everyone's bootstrap
    spare: str  # a free swarm address, for one more DHT client


def start_swarm(lab: Lab, host: Host, *, first: str, ours: int, libtorrent: int) -> Proc:
    """tools/dhtswarm.py on `host` (the addresses from `first` up must be there): the
    process, once every node of the swarm has joined."""
    args = ["swarm", "--first", first, "--ours", str(ours), "--libtorrent", str(libtorrent)]
    proc = host.spawn([sys.executable, str(TOOLS / "dhtswarm.py"), *args], name="swarm")
    lab.wait_for(
        lambda: "ready" in proc.log() or not proc.alive(), timeout=60, what="the DHT swarm"
    )
    if not proc.alive():
        raise RuntimeError(f"the DHT swarm exited at start:\n{proc.log()}")
    return proc


def build_dht_swarm(lab: Lab, *, ours: int = 27, libtorrent: int = 3) -> DhtSwarm:
    """`ours` tidewire DHT nodes and `libtorrent` libtorrent sessions from 203.0.113.10
    up; a provider (exit, the gossip line's share and region) publishing its record, and
    a seeker that knows only the first swarm node and the region."""
    provider, swarm, seeker = lab.host("provider"), lab.host("swarm"), lab.host("seeker")
    lab.link(provider, swarm, "203.0.113.1/24", "203.0.113.2/24", a_if="wan0", b_if="eth0")
    lab.link(seeker, swarm, "198.51.100.2/24", "198.51.100.1/24", a_if="eth0", b_if="eth1")
    first_host = 10
    for i in range(first_host, first_host + ours + libtorrent + 1):
        swarm.run(f"ip addr add 203.0.113.{i}/24 dev eth0")
    swarm.run("sysctl -qw net.ipv4.ip_forward=1")  # the seeker reaches the provider
    provider.run("ip route add default via 203.0.113.2")
    seeker.run("ip route add default via 198.51.100.1")
    first = f"203.0.113.{first_host}"
    start_swarm(lab, swarm, first=first, ours=ours, libtorrent=libtorrent)
    disc = {"dht": True, "dht_bootstrap": [f"{first}:6881"], "region": "lab"}
    k_prov, p_prov = genkey()
    prov = _up(
        lab,
        provider,
        "twprov",
        k_prov,
        "10.99.0.1/24",
        listen_port=51820,
        exit={"enabled": True},
        share=PROVIDER_SHARE,
        discovery=disc,
    )
    k_seek, _ = genkey()
    seek_conf = tidewire_toml(
        name="twseek",
        private_key=k_seek,
        address=["10.98.0.2/32"],
        lab=lab,
        discovery={**disc, "dht_port": 6881},
    )
    seek = lab.tidewire(seeker, "twseek", seek_conf)
    spare = f"203.0.113.{first_host + ours + libtorrent}"
    return DhtSwarm(swarm, seeker, prov, seek, seek_conf, k_prov, p_prov, first, spare)
