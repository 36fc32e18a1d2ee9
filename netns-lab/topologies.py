"""Topologies shared by the scenarios, the demo and the benchmark.

The exit lab (`build_exit_lab`):

    [client] tidewire (native)  198.51.100.2 ----.
                                                 | 198.51.100.1
    [wgclient] wireguard-go     198.51.101.2 ----+ 198.51.101.1  [provider] tidewire --exit
                                                 | 192.168.77.1 ---- 192.168.77.2 [lan]
                                                 | 203.0.113.1  ---- 203.0.113.2  [internet]
    IPv6 too: lan fd77:77::2 (ULA), internet 2001:db8:113::2, provider 2001:db8:113::1.
    tunnel 10.99.0.0/24 and fd99::/64: provider .1, client .2, wgclient .3; both clients send
    everything (0.0.0.0/0 and ::/0) through the provider. The internet host answers on TCP 80
    and 25, IPv4 and IPv6.

The same lab with a censor on the way (`build_exit_lab(lab, censor=True)`, censor.py):

    [client]   198.51.100.2 --.
                               [censor] 198.51.102.1 ---- 198.51.102.2 [provider] ...
    [wgclient] 198.51.101.2 --'

    The tunnel is IPv4 only. The provider also listens on masked 8443, and the client's
    peer lists masked://198.51.102.2:8443 first, then udp://...:51820. The WireGuard-mode
    client is tidewire's own in wireguard mode (`wg_node`: a test reads its status), which
    can only use udp. The censor forwards everything until its rules are switched on.

The other labs with a censor on the way (a censored path, a censored pair) are in
censored_lab.py, importable from here too.
"""

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from censor import Censor
from censored_lab import CensoredPair as CensoredPair
from censored_lab import CensoredPath as CensoredPath
from censored_lab import build_censored_pair as build_censored_pair
from censored_lab import build_censored_path as build_censored_path
from lab import Host, Lab, Node, genkey, tidewire_toml
from middlebox.impair import ImpairClient

sys.path.insert(0, str(Path(__file__).resolve().parent / "scenarios"))
from wg import wg_conf, wg_quick_up

LABDIR = Path(__file__).resolve().parent
TOOLS = LABDIR / "tools"
CENSORED_PROVIDER = "198.51.102.2"  # the provider's address behind the censor


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
    censor: Censor | None = None  # with censor=True
    wg_node: Node | None = None  # with censor=True: the WireGuard-mode tidewire client


def exit_lab_hosts(
    lab: Lab, *, censor: bool = False
) -> tuple[Host, Host, Host, Host, Host, Censor | None]:
    """The exit lab's hosts, links and routes, with no tunnel software yet: (client,
    wgclient, provider, lan, internet, the censor if `censor`)."""
    client, wgclient, provider = lab.host("client"), lab.host("wgclient"), lab.host("provider")
    lan, internet = lab.host("lan"), lab.host("internet")
    the_censor = _front(lab, client, wgclient, provider) if censor else None
    if the_censor is None:
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
    return client, wgclient, provider, lan, internet, the_censor


def build_exit_lab(
    lab: Lab,
    *,
    censor: bool = False,
    with_wireguard_go: bool = True,
    provider_misbehave: tuple[str, ...] = (),
    client_misbehave: tuple[str, ...] = (),
    accounting: dict[str, Any] | None = None,
    share: dict[str, Any] | None = None,
) -> ExitLab:
    """The exit lab, or with `censor` the censored exit lab (the module's diagrams)."""
    client, wgclient, provider, lan, internet, the_censor = exit_lab_hosts(lab, censor=censor)
    for port in (80, 25):
        internet.spawn(
            [sys.executable, str(TOOLS / "tcpsink.py"), "listen", "::", str(port)],  # v4 and v6
            name=f"internet-{port}",
        )

    def tunnel(v4: str, v6: str) -> list[str]:
        """IPv4 and IPv6 in the tunnel; only IPv4 with the censor, whose tests count every
        packet (an IPv6 address on a TUN sends MLD reports, which ::/0 would carry)."""
        return [v4] if censor else [v4, v6]

    k_prov, p_prov = genkey()
    k_cli, p_cli = genkey()
    k_wg, p_wg = genkey()
    wg_ips = tunnel("10.99.0.3/32", "fd99::3/128")
    client_ips = tunnel("10.99.0.2/32", "fd99::2/128")
    provider_node = lab.tidewire(
        provider,
        "twexit",
        tidewire_toml(
            name="twexit",
            private_key=k_prov,
            address=tunnel("10.99.0.1/24", "fd99::1/64"),
            lab=lab,
            listen_port=None if censor else 51820,
            listen=["udp://0.0.0.0:51820", "masked://0.0.0.0:8443"] if censor else None,
            peers=[
                {"public_key": p_cli, "allowed_ips": client_ips},
                {"public_key": p_wg, "allowed_ips": wg_ips, "mode": "wireguard"},
            ],
            exit={"enabled": True},
            accounting=accounting,
            share=share,
        ),
        misbehave=provider_misbehave,
    )
    everything = tunnel("0.0.0.0/0", "::/0")
    if censor:
        skins = [f"masked://{CENSORED_PROVIDER}:8443", f"udp://{CENSORED_PROVIDER}:51820"]
        to_provider: dict[str, Any] = {"endpoints": skins}
    else:
        to_provider = {"endpoint": "198.51.100.1:51820"}
    client_node = lab.tidewire(
        client,
        "twcli",
        tidewire_toml(
            name="twcli",
            private_key=k_cli,
            address=client_ips,
            lab=lab,
            peers=[
                {"public_key": p_prov, "allowed_ips": everything, "provider": True, **to_provider}
            ],
        ),
        misbehave=client_misbehave,
    )
    wg_path = Path()
    wg_iface = "wgexit0"
    wg_node = None
    if censor:
        to_provider = {"endpoint": f"{CENSORED_PROVIDER}:51820", "mode": "wireguard"}
        wg_node = lab.tidewire(
            wgclient,
            "twwg",
            tidewire_toml(
                name="twwg",
                private_key=k_wg,
                address=wg_ips,
                lab=lab,
                peers=[{"public_key": p_prov, "allowed_ips": everything, **to_provider}],
            ),
        )
    elif with_wireguard_go:
        wg_path = wg_client_up(
            lab, wgclient, wg_iface, private_key=k_wg, address=wg_ips, provider=p_prov
        )
    return ExitLab(
        client,
        wgclient,
        provider,
        lan,
        internet,
        provider_node,
        client_node,
        wg_path,
        wg_iface,
        censor=the_censor,
        wg_node=wg_node,
    )


def wg_client_up(
    lab: Lab, wgclient: Host, iface: str, *, private_key: str, address: list[str], provider: str
) -> Path:
    """The exit lab's stock client: wireguard-go (wg-quick) sending everything to the
    provider at 198.51.101.1:51820."""
    peer = {"PublicKey": provider, "AllowedIPs": "0.0.0.0/0, ::/0"}
    peer["Endpoint"] = "198.51.101.1:51820"
    conf = wg_conf(private_key=private_key, address=address, listen_port=None, peers=[peer])
    return wg_quick_up(lab, wgclient, iface, conf)


def _front(lab: Lab, client: Host, wgclient: Host, provider: Host) -> Censor:
    """The censored lab's front: both clients reach the provider through the censor."""
    middle = lab.host("censor")
    lab.link(client, middle, "198.51.100.2/24", "198.51.100.1/24", a_if="eth0", b_if="cl0")
    lab.link(wgclient, middle, "198.51.101.2/24", "198.51.101.1/24", a_if="eth0", b_if="wg0")
    lab.link(
        middle, provider, "198.51.102.1/24", f"{CENSORED_PROVIDER}/24", a_if="isp0", b_if="isp0"
    )
    provider.run("ip route add 198.51.100.0/22 via 198.51.102.1")
    return Censor(middle)


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
