"""The provider (exit) role: clients reach the internet through the provider and nothing
else. See netns-lab/topologies.py for the diagram."""

from pathlib import Path

from common import ping, unreachable
from lab import Lab
from topologies import build_exit_lab, tcp_check
from wg import wg_quick_down


def test_clients_reach_the_internet_and_nothing_else() -> None:
    with Lab("exit") as lab:
        x = build_exit_lab(lab)
        try:
            for client in (x.client, x.wgclient):
                ping(client, "203.0.113.2")
                assert tcp_check(client, "203.0.113.2", 80), f"{client.name}: internet TCP 80"
                assert not tcp_check(client, "203.0.113.2", 25), f"{client.name}: SMTP got out"
                for addr in ("192.168.77.2", "203.0.113.1", "192.168.77.1", "10.99.0.1"):
                    assert unreachable(client, addr), f"{client.name} reached {addr}"
                # IPv6 through the exit, with the same policy
                ping(client, "2001:db8:113::2")
                assert tcp_check(client, "2001:db8:113::2", 80), (
                    f"{client.name}: internet v6 TCP 80"
                )
                assert not tcp_check(client, "2001:db8:113::2", 25), (
                    f"{client.name}: v6 SMTP got out"
                )
                for addr in ("fd77:77::2", "2001:db8:113::1", "fd99::1"):
                    assert unreachable(client, addr), f"{client.name} reached {addr}"
            # the internet host saw the provider, not the clients (NAT)
            st = x.provider_node.status()
            refused = st["exit"]["refused"]
            assert st["exit"]["enabled"] and st["exit"]["outbound_interface"] == "wan0"
            assert refused.get("private", 0) > 0 and refused.get("router", 0) > 0
            assert refused.get("smtp", 0) > 0 and refused.get("ula", 0) > 0
            modes = {p["allowed_ips"][0]: p["mode"] for p in st["peers"]}
            assert "fc00::/7" in x.provider.run("nft list table inet tidewire_twexit").stdout
            assert modes == {"10.99.0.2/32": "native", "10.99.0.3/32": "wireguard"}
            assert all(p["rx_bytes"] > 0 for p in st["peers"])
            # the firewall carries the same policy as a second wall
            table = x.provider.run("nft list table inet tidewire_twexit").stdout
            assert "masquerade" in table and "192.168.0.0/16" in table and "dport 25" in table
            # after all that, neither node has mapped the system OpenSSL that the standard
            # library's ssl, hmac and hashlib bring (cli/lazy_modules.py): 4.9 MiB each
            for node in (x.provider_node, x.client_node):
                maps = Path(f"/proc/{node.proc.popen.pid}/maps").read_text()
                assert "libssl.so" not in maps and "libcrypto.so" not in maps, node.name
            # the client's default route came with wg-quick's two policy rules per family,
            # and a clean stop takes them away again
            for family in ("-4", "-6"):
                rules = x.client.run(f"ip {family} rule show").stdout
                assert "suppress_prefixlength 0" in rules and "not from all fwmark" in rules
            x.client_node.cli("down")
            lab.wait_for(lambda: not x.client_node.proc.alive(), timeout=10, what="client to stop")
            for family in ("-4", "-6"):
                rules = x.client.run(f"ip {family} rule show").stdout
                assert "suppress_prefixlength" not in rules and "fwmark" not in rules, rules
        finally:
            wg_quick_down(x.wgclient, x.wg_path)


def test_rules_go_away_on_stop_and_stale_rules_after_a_kill() -> None:
    with Lab("exit2") as lab:
        x = build_exit_lab(lab, with_wireguard_go=False)
        ping(x.client, "203.0.113.2")
        config = x.provider_node.config.read_text()
        x.provider_node.cli("down")
        lab.wait_for(lambda: not x.provider_node.proc.alive(), timeout=10, what="provider to stop")
        assert x.provider.run("nft list table inet tidewire_twexit", check=False).returncode != 0
        assert x.provider.run("sysctl -n net.ipv4.ip_forward").stdout.strip() == "0"
        assert "twexit" not in x.provider.run("ip -br link").stdout

        node = lab.tidewire(x.provider, "twexit", config)
        node.proc.popen.kill()  # kill -9: no clean-up at all
        node.proc.popen.wait(timeout=10)
        assert x.provider.run("nft list table inet tidewire_twexit", check=False).returncode == 0
        node = lab.tidewire(x.provider, "twexit", config)
        lab.wait_for(
            lambda: "stale exit rules" in node.proc.log(), timeout=10, what="stale rules removed"
        )
        # the client still holds keys the restarted provider forgot; as with WireGuard, it
        # starts a new handshake once 15 s of data go unanswered
        lab.wait_for(
            lambda: ping(x.client, "203.0.113.2", count=1, check=False),
            timeout=40,
            what="the client to re-handshake with the restarted provider",
        )
        assert x.provider.run("nft list table inet tidewire_twexit").stdout.count("masquerade") == 1
