"""DNS without leaks: a client with `dns = ["10.99.0.1"]` resolves through the provider's
resolver, which asks a stub DNS server on the internet host; no DNS leaves the client's
physical interface; a kill -9 then the next start and stop give back the original
resolv.conf; the resolver answers on the tunnel address, port 53, and nothing else of
the router is reachable.

    [client] eth0 198.51.100.2 ---- 198.51.100.1 isp0 [provider] wan0 203.0.113.1 ---- [internet]
    tunnel 10.99.0.2 ------------------------------> 10.99.0.1 (resolver :53)   203.0.113.2 :53 stub

The client namespace's resolv.conf is /etc/netns/NS/resolv.conf, which `ip netns exec`
bind-mounts over /etc/resolv.conf for every process it starts: the host's file is never
touched.
"""

import shutil
import sys
from pathlib import Path

from lab import Host, Lab, genkey, tidewire_toml
from topologies import TOOLS, tcp_check

PY = sys.executable
ORIGINAL = "# the client's own resolver, before the tunnel\nnameserver 198.51.100.53\n"
LEAK_TABLE = """table inet dnsleak {
  chain out {
    type filter hook output priority filter; policy accept;
    oifname "eth0" udp dport 53 counter
    oifname "eth0" tcp dport 53 counter
  }
}
"""
ASK = """
import socket, struct, sys
from tidewire.node.core import dnsmsg
addr, port, proto, name = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
q = dnsmsg.build_query(4321, name, 1)
if proto == "udp":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
    s.sendto(q, (addr, port)); reply = s.recv(4096)
else:
    s = socket.create_connection((addr, port), timeout=3)
    s.sendall(struct.pack("!H", len(q)) + q)
    n = struct.unpack("!H", s.recv(2, socket.MSG_WAITALL))[0]; reply = s.recv(n, socket.MSG_WAITALL)
print(socket.inet_ntoa(reply[-4:]))
"""


def ask(host: Host, addr: str, proto: str, name: str) -> str | None:
    result = host.run([PY, "-c", ASK, addr, "53", proto, name], check=False, timeout=20)
    return result.stdout.strip() if result.returncode == 0 else None


def leaked(client: Host) -> int:
    table = client.run("nft list table inet dnsleak").stdout
    return sum(int(w) for w in table.split("packets ")[1:] for w in [w.split()[0]])


def test_dns_through_the_tunnel_without_leaks_and_restored_after_kill_9() -> None:
    with Lab("dns") as lab:
        client, provider, internet = lab.host("client"), lab.host("provider"), lab.host("inet")
        netns_etc = Path("/etc/netns") / client.netns
        netns_etc.mkdir(parents=True)
        resolv = netns_etc / "resolv.conf"
        resolv.write_text(ORIGINAL)
        try:
            lab.link(client, provider, "198.51.100.2/24", "198.51.100.1/24", a_if="eth0")
            lab.link(provider, internet, "203.0.113.1/24", "203.0.113.2/24", a_if="wan0")
            provider.run("ip route add default via 203.0.113.2")
            client.run("ip route add default via 198.51.100.1")
            log = lab.tmp / "stub-queries.log"
            stub = internet.spawn([PY, str(TOOLS / "dnsstub.py"), "203.0.113.2", "53", str(log)])
            lab.wait_for(lambda: "listening" in stub.log(), timeout=10, what="the DNS stub")
            provider.spawn([PY, str(TOOLS / "tcpsink.py"), "listen", "0.0.0.0", "8053"])
            (k_prov, p_prov), (k_cli, p_cli) = genkey(), genkey()
            provider_conf = (
                tidewire_toml(
                    name="twexit",
                    private_key=k_prov,
                    address=["10.99.0.1/24"],
                    lab=lab,
                    listen_port=51820,
                    peers=[{"public_key": p_cli, "allowed_ips": ["10.99.0.2/32"]}],
                    exit={"enabled": True},
                )
                + '\n[dns]\nresolver = true\nupstream = ["203.0.113.2"]\n'
            )
            lab.tidewire(provider, "twexit", provider_conf)
            client_conf = tidewire_toml(
                name="twcli",
                private_key=k_cli,
                address=["10.99.0.2/32"],
                lab=lab,
                peers=[
                    {
                        "public_key": p_prov,
                        "endpoint": "198.51.100.1:51820",
                        "allowed_ips": ["0.0.0.0/0"],
                        "provider": True,
                    }
                ],
            ).replace("mtu = 1420\n", 'mtu = 1420\ndns = ["10.99.0.1", "lab.example"]\n')
            node = lab.tidewire(client, "twcli", client_conf)
            text = resolv.read_text()
            assert "nameserver 10.99.0.1\n" in text and "search lab.example" in text, text
            assert "198.51.100.53" not in text
            client.run(["nft", "-f", "-"], input=LEAK_TABLE)

            # the system resolver of the client (glibc, through resolv.conf) goes through
            # the tunnel to the provider's resolver, and on to the stub upstream
            out = client.run("getent ahostsv4 www.example.test", timeout=30).stdout
            assert out.split()[0] == "203.0.113.80", out
            assert "www.example.test" in log.read_text()
            assert ask(client, "10.99.0.1", "tcp", "tcp.example.test") == "203.0.113.80"
            assert ask(client, "10.99.0.1", "udp", "www.example.test") == "203.0.113.80"
            assert log.read_text().count("www.example.test\n") == 1, "the cache answered"
            assert leaked(client) == 0, client.run("nft list table inet dnsleak").stdout

            # nothing else of the router: another port of the tunnel address, port 53 of
            # its other addresses; and the resolver is not on the provider's outside
            assert tcp_check(provider, "10.99.0.1", 8053), "the provider's own service"
            assert not tcp_check(client, "10.99.0.1", 8053), "the router's port 8053 was open"
            assert ask(client, "203.0.113.1", "udp", "x.example.test") is None
            assert ask(internet, "203.0.113.1", "udp", "x.example.test") is None
            assert ask(internet, "203.0.113.1", "tcp", "x.example.test") is None

            # kill -9: the tunnel's resolv.conf stays; the next start restores the
            # original first, and its clean stop leaves the original
            node.proc.popen.kill()
            node.proc.popen.wait(timeout=10)
            assert "10.99.0.1" in resolv.read_text()
            node = lab.tidewire(client, "twcli", client_conf)
            assert "killed run" in node.proc.log()
            assert "nameserver 10.99.0.1\n" in resolv.read_text()
            node.cli("down")
            lab.wait_for(lambda: not node.proc.alive(), timeout=10, what="the client to stop")
            assert resolv.read_text() == ORIGINAL
        finally:
            shutil.rmtree(netns_etc, ignore_errors=True)
