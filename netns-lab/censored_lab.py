"""The topologies with a censor (censor.py) on the way, besides the censored exit lab
(topologies.build_exit_lab with `censor=True`): a censored path without a tunnel
(`build_censored_path`) and a censored pair of tidewire nodes (`build_censored_pair`).
Each function's docstring draws its diagram; topologies.py re-exports them."""

import sys
from dataclasses import dataclass
from pathlib import Path

from censor import Censor
from lab import Host, Lab, Node

TOOLS = Path(__file__).resolve().parent / "tools"


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
