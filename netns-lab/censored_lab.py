"""The topologies with a censor (censor.py) on the way: the exit lab censored
(`build_censored_exit_lab`), a censored path without a tunnel (`build_censored_path`)
and a censored pair of tidewire nodes (`build_censored_pair`). Each function's
docstring draws its diagram; topologies.py re-exports them."""

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from censor import Censor
from lab import Host, Lab, Node, genkey, tidewire_toml

TOOLS = Path(__file__).resolve().parent / "tools"


@dataclass
class CensoredLab:
    client: Host
    wgclient: Host
    censor: Censor
    provider: Host
    internet: Host
    provider_node: Node
    client_node: Node
    wg_node: Node


def build_censored_exit_lab(lab: Lab) -> CensoredLab:
    """The exit lab with a censor on the way (IPv4 only):

        [client]   tidewire native, masked  198.51.100.2 --.
                                                            [censor] 198.51.102.1 ---- 198.51.102.2
        [wgclient] tidewire wireguard mode  198.51.101.2 --'          [provider] --exit, listens on
                                                                      udp 51820 and masked 8443
                                                      203.0.113.1 ---- 203.0.113.2 [internet]

    The client's peer lists masked://198.51.102.2:8443 first, then udp://...:51820; the
    WireGuard-mode client can only use udp. The censor forwards everything until its rules
    are switched on.
    """
    client, wgclient, censor_host = lab.host("client"), lab.host("wgclient"), lab.host("censor")
    provider, internet = lab.host("provider"), lab.host("internet")
    lab.link(client, censor_host, "198.51.100.2/24", "198.51.100.1/24", a_if="eth0", b_if="cl0")
    lab.link(wgclient, censor_host, "198.51.101.2/24", "198.51.101.1/24", a_if="eth0", b_if="wg0")
    lab.link(censor_host, provider, "198.51.102.1/24", "198.51.102.2/24", a_if="isp0", b_if="isp0")
    lab.link(provider, internet, "203.0.113.1/24", "203.0.113.2/24", a_if="wan0", b_if="eth0")
    censor = Censor(censor_host)
    provider.run("ip route add default via 203.0.113.2")
    provider.run("ip route add 198.51.100.0/22 via 198.51.102.1")
    client.run("ip route add default via 198.51.100.1")
    wgclient.run("ip route add default via 198.51.101.1")
    internet.spawn([sys.executable, str(TOOLS / "tcpsink.py"), "listen", "::", "80"], name="web")

    (k_prov, p_prov), (k_cli, p_cli), (k_wg, p_wg) = genkey(), genkey(), genkey()
    provider_node = lab.tidewire(
        provider,
        "twexit",
        tidewire_toml(
            name="twexit",
            private_key=k_prov,
            address=["10.99.0.1/24"],
            lab=lab,
            listen=["udp://0.0.0.0:51820", "masked://0.0.0.0:8443"],
            peers=[
                {"public_key": p_cli, "allowed_ips": ["10.99.0.2/32"]},
                {"public_key": p_wg, "allowed_ips": ["10.99.0.3/32"], "mode": "wireguard"},
            ],
            exit={"enabled": True, "outbound_interface": "wan0"},
        ),
    )

    def dialler(host: Host, name: str, key: str, address: str, peer: dict[str, Any]) -> Node:
        text = tidewire_toml(
            name=name,
            private_key=key,
            address=[address],
            lab=lab,
            peers=[{"public_key": p_prov, "allowed_ips": ["0.0.0.0/0"], **peer}],
        )
        return lab.tidewire(host, name, text)

    skins = ["masked://198.51.102.2:8443", "udp://198.51.102.2:51820"]
    client_node = dialler(
        client, "twcli", k_cli, "10.99.0.2/32", {"endpoints": skins, "provider": True}
    )
    wg_node = dialler(
        wgclient,
        "twwg",
        k_wg,
        "10.99.0.3/32",
        {"endpoint": "198.51.102.2:51820", "mode": "wireguard"},
    )
    return CensoredLab(
        client, wgclient, censor, provider, internet, provider_node, client_node, wg_node
    )


@dataclass
class CensoredPath:
    user: Host
    censor: Censor
    server: Host


def build_censored_path(lab: Lab) -> CensoredPath:
    """A user and a server with a censor between them, no tunnel:

        [user] 198.51.100.2 ---- [censor] ---- 198.51.102.2 [server]

    The server echoes TCP and UDP on port 7000 and 7001 (tools/echo.py)."""
    user, censor_host, server = lab.host("user"), lab.host("censor"), lab.host("server")
    lab.link(user, censor_host, "198.51.100.2/24", "198.51.100.1/24", a_if="eth0", b_if="us0")
    lab.link(censor_host, server, "198.51.102.1/24", "198.51.102.2/24", a_if="isp0", b_if="eth0")
    user.run("ip route add default via 198.51.100.1")
    server.run("ip route add default via 198.51.102.1")
    censor = Censor(censor_host)
    echoes = [
        server.spawn([sys.executable, str(TOOLS / "echo.py"), "0.0.0.0", str(port)], name="echo")
        for port in (7000, 7001)
    ]
    lab.wait_for(
        lambda: all("listening" in e.log() for e in echoes), timeout=10, what="the echo servers"
    )
    return CensoredPath(user, censor, server)


@dataclass
class CensoredPair:
    client: Host
    censor_host: Host
    provider: Host
    censor: Censor
    client_node: Node
    provider_node: Node


def build_censored_pair(
    lab: Lab, *, endpoint: list[str], listen: list[str], classifier: bool = False
) -> CensoredPair:
    """A native client and provider with a censor between them (IPv4):

        [client] 198.51.100.2 ---- [censor] ---- 198.51.102.2 [provider]

    The client's candidates are `endpoint` (URLs, in order), the provider listens on
    `listen`; tunnel 10.99.0.2 (client) and 10.99.0.1 (provider). With `classifier` the
    censor's TCP first-packet classifier is on before either node starts, so every TCP
    connection they ever open is judged."""
    client, censor_host, provider = lab.host("client"), lab.host("censor"), lab.host("provider")
    lab.link(client, censor_host, "198.51.100.2/24", "198.51.100.1/24", a_if="eth0", b_if="cl0")
    lab.link(censor_host, provider, "198.51.102.1/24", "198.51.102.2/24", a_if="isp0", b_if="isp0")
    censor = Censor(censor_host)
    if classifier:
        censor.tcp_classifier(True)
    client.run("ip route add default via 198.51.100.1")
    provider.run("ip route add default via 198.51.102.1")
    client_node, provider_node = lab.tidewire_pair(
        client,
        provider,
        endpoint=endpoint,
        tunnel_a=["10.99.0.2/24"],
        tunnel_b=["10.99.0.1/24"],
        names=("twcli", "twprov"),
        b_listen=listen,
    )
    return CensoredPair(client, censor_host, provider, censor, client_node, provider_node)
