"""Topologies shared by the scenarios, the demo and the benchmark.

The exit lab:

    [client] tidewire (native)  198.51.100.2 ----.
                                                 | 198.51.100.1
    [wgclient] wireguard-go     198.51.101.2 ----+ 198.51.101.1  [provider] tidewire --exit
                                                 | 192.168.77.1 ---- 192.168.77.2 [lan]
                                                 | 203.0.113.1  ---- 203.0.113.2  [internet]
    IPv6 too: lan fd77:77::2 (ULA), internet 2001:db8:113::2, provider 2001:db8:113::1.
    tunnel 10.99.0.0/24 and fd99::/64: provider .1, client .2, wgclient .3; both clients send
    everything (0.0.0.0/0 and ::/0) through the provider. The internet host answers on TCP 80
    and 25, IPv4 and IPv6.
"""

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from censor import Censor
from lab import Host, Lab, Node, genkey, tidewire_toml
from middlebox.impair import ImpairClient

sys.path.insert(0, str(Path(__file__).resolve().parent / "scenarios"))
from wg import wg_conf, wg_quick_up

LABDIR = Path(__file__).resolve().parent
TOOLS = LABDIR / "tools"


@dataclass
class ExitLab:
    client: Host
    wgclient: Host
    provider: Host
    lan: Host
    internet: Host
    provider_node: Node
    client_node: Node
    wg_path: Path
    wg_iface: str


def build_exit_lab(
    lab: Lab,
    *,
    with_wireguard_go: bool = True,
    provider_misbehave: tuple[str, ...] = (),
    client_misbehave: tuple[str, ...] = (),
    accounting: dict[str, Any] | None = None,
    share: dict[str, Any] | None = None,
) -> ExitLab:
    client, wgclient, provider = lab.host("client"), lab.host("wgclient"), lab.host("provider")
    lan, internet = lab.host("lan"), lab.host("internet")
    lab.link(client, provider, "198.51.100.2/24", "198.51.100.1/24", a_if="eth0", b_if="isp0")
    lab.link(wgclient, provider, "198.51.101.2/24", "198.51.101.1/24", a_if="eth0", b_if="isp1")
    lab.link(
        provider,
        lan,
        ["192.168.77.1/24", "fd77:77::1/64"],
        ["192.168.77.2/24", "fd77:77::2/64"],
        a_if="lan0",
        b_if="eth0",
    )
    lab.link(
        provider,
        internet,
        ["203.0.113.1/24", "2001:db8:113::1/64"],
        ["203.0.113.2/24", "2001:db8:113::2/64"],
        a_if="wan0",
        b_if="eth0",
    )
    provider.run("ip route add default via 203.0.113.2")
    provider.run("ip -6 route add default via 2001:db8:113::2")
    client.run("ip route add default via 198.51.100.1")
    wgclient.run("ip route add default via 198.51.101.1")
    lan.run("ip route add default via 192.168.77.1")
    for port in (80, 25):
        internet.spawn(
            [sys.executable, str(TOOLS / "tcpsink.py"), "listen", "::", str(port)],  # v4 and v6
            name=f"internet-{port}",
        )

    k_prov, p_prov = genkey()
    k_cli, p_cli = genkey()
    k_wg, p_wg = genkey()
    provider_node = lab.tidewire(
        provider,
        "twexit",
        tidewire_toml(
            name="twexit",
            private_key=k_prov,
            address=["10.99.0.1/24", "fd99::1/64"],
            lab=lab,
            listen_port=51820,
            peers=[
                {"public_key": p_cli, "allowed_ips": ["10.99.0.2/32", "fd99::2/128"]},
                {
                    "public_key": p_wg,
                    "allowed_ips": ["10.99.0.3/32", "fd99::3/128"],
                    "mode": "wireguard",
                },
            ],
            exit={"enabled": True},
            accounting=accounting,
            share=share,
        ),
        misbehave=provider_misbehave,
    )
    client_node = lab.tidewire(
        client,
        "twcli",
        tidewire_toml(
            name="twcli",
            private_key=k_cli,
            address=["10.99.0.2/32", "fd99::2/128"],
            lab=lab,
            peers=[
                {
                    "public_key": p_prov,
                    "endpoint": "198.51.100.1:51820",
                    "allowed_ips": ["0.0.0.0/0", "::/0"],
                    "provider": True,
                }
            ],
        ),
        misbehave=client_misbehave,
    )
    wg_path = Path()
    wg_iface = "wgexit0"
    if with_wireguard_go:
        wg_path = wg_quick_up(
            lab,
            wgclient,
            wg_iface,
            wg_conf(
                private_key=k_wg,
                address=["10.99.0.3/32", "fd99::3/128"],
                listen_port=None,
                peers=[
                    {
                        "PublicKey": p_prov,
                        "AllowedIPs": "0.0.0.0/0, ::/0",
                        "Endpoint": "198.51.101.1:51820",
                    }
                ],
            ),
        )
    return ExitLab(
        client, wgclient, provider, lan, internet, provider_node, client_node, wg_path, wg_iface
    )


def tcp_check(host: Host, addr: str, port: int) -> bool:
    return (
        host.run(
            [sys.executable, str(TOOLS / "tcpsink.py"), "check", addr, str(port)],
            check=False,
            timeout=20,
        ).returncode
        == 0
    )


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


@dataclass
class FloodLab:
    """The flood lab:

        [a] tidewire 192.168.241.1 ---- 192.168.241.2 [b] tidewire 192.168.243.1 ---- [m]
                                             m: 192.168.243.2 late peer, 192.168.243.3 attacker

    a and b are an established pair (tunnel 10.77.0.1 and .2); b also knows a late peer
    (10.77.0.3) that m starts with `late_peer` while it floods b."""

    a: Host
    b: Host
    m: Host
    na: Node
    nb: Node
    pb: str  # b's public key
    late_peer: str  # the late peer's config (run it on m as "twc")


def build_flood_lab(lab: Lab) -> FloodLab:
    a, b, m = lab.host("a"), lab.host("b"), lab.host("m")
    lab.link(a, b, "192.168.241.1/24", "192.168.241.2/24")
    lab.link(m, b, ["192.168.243.2/24", "192.168.243.3/24"], "192.168.243.1/24")
    kc, pc = genkey()
    na, nb = lab.tidewire_pair(
        a,
        b,
        endpoint="192.168.241.2:51821",
        tunnel_a=["10.77.0.1/24"],
        tunnel_b=["10.77.0.2/24"],
        b_extra_peers=({"public_key": pc, "allowed_ips": ["10.77.0.3/32"]},),
    )
    pb = nb.status()["public_key"]
    late_peer = tidewire_toml(
        name="twc",
        private_key=kc,
        address=["10.77.0.3/24"],
        lab=lab,
        peers=[
            {"public_key": pb, "endpoint": "192.168.243.1:51821", "allowed_ips": ["10.77.0.2/32"]}
        ],
    )
    return FloodLab(a, b, m, na, nb, pb, late_peer)


def impaired_link(
    lab: Lab,
    a: Host,
    b: Host,
    a_addrs: str | list[str],
    b_addrs: str | list[str],
    *,
    name: str = "impair",
) -> ImpairClient:
    """A link between a and b with the impairment box (middlebox/impair.py) on it:

        [a] a_addrs ---- [name] user-space bridge ---- b_addrs [b]

    The middle namespace has no addresses: a and b see one Ethernet segment, and every
    frame crosses the box, which starts with no impairment. Set one at run time with
    the returned client: `box.set("ab", delay=0.02, rate=10e6)` ("ab" is a to b)."""
    mid = lab.host(name)
    mid.run("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1")
    a_end, _ = lab.link(a, mid, a_addrs, [], a_if=f"to-{b.name}"[:15], b_if="ia")
    _, b_end = lab.link(mid, b, [], b_addrs, a_if="ib", b_if=f"to-{a.name}"[:15])
    env = {"PYTHONPATH": str(LABDIR)}
    for host, iface in ((a, a_end), (b, b_end)):
        host.run(
            [
                "env",
                f"PYTHONPATH={LABDIR}",
                sys.executable,
                "-m",
                "middlebox.impair",
                "offloads",
                iface,
            ]
        )
    control = lab.tmp / f"{name}.sock"
    box = mid.spawn(
        [sys.executable, "-m", "middlebox.impair", "ia", "ib", str(control)], name=name, env=env
    )
    lab.wait_for(lambda: "ready" in box.log() or not box.alive(), timeout=10, what=name)
    if not box.alive():
        raise RuntimeError(f"the impairment box exited at start:\n{box.log()}")
    return ImpairClient(control)
