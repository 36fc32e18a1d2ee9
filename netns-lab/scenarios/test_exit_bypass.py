"""Ways past the exit policy found in the lab, each checked where the packet would land:
a listener on the provider, a capture on the internet host, the forwarding switch.

The client's packets are written straight into its TUN device (below its routing), so
the tunnel carries exactly the bytes built here. See netns-lab/topologies.py for the
diagram: client 10.99.0.2 / fd99::2, provider WAN 203.0.113.1/24 and 2001:db8:113::1/64,
internet host 203.0.113.2 and 2001:db8:113::2.
"""

from collections import Counter
from typing import Any

from common import PY, TOOLS, ping, unreachable
from lab import Host, Lab, Node, Proc, genkey, tidewire_toml
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop
from topologies import build_exit_lab

PACKETS = str(TOOLS / "packets.py")
V4, V6 = "10.99.0.2", "fd99::2"


def tool(lab: Lab, host: Host, *args: str) -> Proc:
    proc = host.spawn([PY, PACKETS, *args], name=f"{host.name}-{args[0]}")
    lab.wait_for(lambda: "ready" in proc.log(), timeout=10, what=f"{host.name} {args[0]}")
    return proc


def inject(host: Host, *packets: Any) -> None:
    for pkt in packets:
        host.run([PY, PACKETS, "inject", "twcli", bytes(pkt).hex()])


def refused(node: Node) -> Counter[str]:
    return Counter(node.status()["exit"]["refused"])


def forwarding(host: Host) -> tuple[str, str]:
    out = host.run("sysctl -n net.ipv4.ip_forward net.ipv6.conf.all.forwarding").stdout.split()
    return out[0], out[1]


def src(dst: str) -> Any:
    return IP(src=V4, dst=dst) if ":" not in dst else IPv6(src=V6, dst=dst)


def test_broadcast_anycast_and_new_addresses_do_not_reach_the_provider() -> None:
    with Lab("bcast") as lab:
        x = build_exit_lab(lab, with_wireguard_go=False)
        ping(x.client, "203.0.113.2")
        x.provider.run("ip addr add 192.0.2.1/24 dev lan0")  # after start
        heard = tool(lab, x.provider, "listen", "9999")
        control = tool(lab, x.internet, "listen", "9999")
        before = refused(x.provider_node)
        targets = ("203.0.113.255", "2001:db8:113::", "192.0.2.1", "192.0.2.255")
        inject(x.client, *(src(d) / UDP(sport=5000, dport=9999) / b"hi" for d in targets))
        # sent after the others through the same tunnel: once these arrive, so did those
        inject(x.client, *(src(d) / UDP(dport=9999) for d in ("203.0.113.2", "2001:db8:113::2")))
        lab.wait_for(
            lambda: control.log().count("got") == 2, timeout=10, what="the internet to hear both"
        )
        assert "got" not in heard.log(), f"the provider's own socket heard:\n{heard.log()}"
        assert unreachable(x.client, "2001:db8:113::"), "the subnet-router anycast answered"
        after = refused(x.provider_node)
        # the node's own check, not only the nftables wall, refused those it knew at start
        assert after["broadcast"] - before["broadcast"] >= 1, after
        assert after["router"] - before["router"] >= 3, after  # anycast UDP and two pings


def test_the_node_follows_addresses_added_after_start() -> None:
    with Lab("newaddr") as lab:
        x = build_exit_lab(lab, with_wireguard_go=False)
        ping(x.client, "203.0.113.2")
        x.provider.run("ip addr add 192.0.2.1/24 dev lan0")
        heard = tool(lab, x.provider, "listen", "9999")
        before = refused(x.provider_node)

        def refused_by_the_node() -> bool:
            inject(x.client, src("192.0.2.1") / UDP(dport=9999))
            return refused(x.provider_node)["router"] > before["router"]

        lab.wait_for(refused_by_the_node, timeout=10, what="the node to refuse 192.0.2.1")
        assert "got" not in heard.log()


def test_smtp_behind_extension_headers_and_in_fragments_is_refused_by_the_node() -> None:
    with Lab("exthdr") as lab:
        x = build_exit_lab(lab, with_wireguard_go=False)
        ping(x.client, "203.0.113.2")
        cap = tool(lab, x.internet, "capture", "eth0")
        before = refused(x.provider_node)
        syn = TCP(sport=40000, dport=25, flags="S")
        v6 = src("2001:db8:113::2")
        inject(
            x.client,
            v6 / IPv6ExtHdrHopByHop() / syn,
            v6 / IPv6ExtHdrDestOpt() / syn,
            v6 / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / syn,
            v6 / IPv6ExtHdrFragment(m=1, id=7) / syn,  # first fragment: the port is there
            v6 / IPv6ExtHdrFragment(offset=3, id=7, nh=6) / bytes(16),  # a later one
            v6 / IPv6ExtHdrFragment(m=1, id=8, nh=6) / bytes(syn)[:8],  # header cut short
            IP(src=V4, dst="203.0.113.2", flags="MF", id=9) / syn,
            IP(src=V4, dst="203.0.113.2", frag=3, id=9, proto=6) / bytes(16),
        )
        inject(x.client, v6 / TCP(sport=40001, dport=80, flags="S"))
        lab.wait_for(lambda: " tcp 80" in cap.log(), timeout=10, what="the control SYN")
        seen = cap.log().splitlines()
        assert not [line for line in seen if line.endswith(" 25") or "frag" in line], seen
        after = refused(x.provider_node)
        assert after["smtp"] - before["smtp"] >= 5, after  # three chains, two first fragments
        assert after["fragment"] - before["fragment"] >= 3, after


def test_packets_conntrack_finds_invalid_do_not_leave_without_nat() -> None:
    with Lab("invalid") as lab:
        x = build_exit_lab(lab, with_wireguard_go=False)
        ping(x.client, "203.0.113.2")
        cap = tool(lab, x.internet, "capture", "eth0")
        for dst in ("203.0.113.2", "2001:db8:113::2"):
            good = src(dst) / TCP(sport=40002, dport=80, flags="S")
            bad = bytearray(bytes(src(dst) / TCP(sport=40003, dport=80, flags="S")))
            bad[(20 if ":" not in dst else 40) + 16] ^= 0xFF  # the TCP checksum, now wrong
            inject(x.client, bytes(bad), good)
        lab.wait_for(lambda: cap.log().count(" tcp 80") >= 2, timeout=10, what="the two good SYNs")
        seen = cap.log().splitlines()
        leaked = [line for line in seen if line.startswith((V4 + " ", V6 + " "))]
        assert not leaked, f"left the WAN with the tunnel source: {leaked}"
        assert any(line.startswith("203.0.113.1 ") for line in seen), seen  # NAT, as ever


def test_two_exits_in_one_namespace_share_forwarding() -> None:
    with Lab("fwd2") as lab:
        x = build_exit_lab(lab, with_wireguard_go=False)

        # a new namespace may inherit forwarding from the host: start from known values
        config = x.provider_node.config.read_text()
        x.provider_node.cli("down")
        lab.wait_for(lambda: not x.provider_node.proc.alive(), timeout=10, what="exit to stop")
        x.provider.run("sysctl -qw net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0")
        first = lab.tidewire(x.provider, "twexit", config)
        second = lab.tidewire(
            x.provider,
            "twexit2",
            tidewire_toml(
                name="twexit2",
                private_key=genkey()[0],
                address=["10.98.0.1/24"],
                lab=lab,
                listen_port=51821,
                exit={"enabled": True},
            ),
        )
        assert forwarding(x.provider) == ("1", "1")
        first.cli("down")
        lab.wait_for(lambda: not first.proc.alive(), timeout=10, what="the first to stop")
        assert forwarding(x.provider) == ("1", "1"), "the second exit still serves"
        second.proc.popen.kill()  # kill -9 of the last holder: nothing restores at once
        second.proc.popen.wait(timeout=10)
        node = lab.tidewire(x.provider, "twexit", config)
        node.cli("down")
        lab.wait_for(lambda: not node.proc.alive(), timeout=10, what="the restarted exit to stop")
        assert forwarding(x.provider) == ("0", "0"), "the values from before the first exit"


def test_after_a_kill_the_next_exit_restores_the_original_forwarding() -> None:
    with Lab("fwdkill") as lab:
        x = build_exit_lab(lab, with_wireguard_go=False)
        config = x.provider_node.config.read_text()
        x.provider_node.cli("down")
        lab.wait_for(lambda: not x.provider_node.proc.alive(), timeout=10, what="exit to stop")
        x.provider.run("sysctl -qw net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0")
        killed = lab.tidewire(x.provider, "twexit", config)
        killed.proc.popen.kill()  # kill -9: it restores nothing
        killed.proc.popen.wait(timeout=10)
        assert forwarding(x.provider) == ("1", "1")
        node = lab.tidewire(x.provider, "twexit", config)
        node.cli("down")
        lab.wait_for(lambda: not node.proc.alive(), timeout=10, what="the restarted exit to stop")
        assert forwarding(x.provider) == ("0", "0"), "the values from before the killed exit"
