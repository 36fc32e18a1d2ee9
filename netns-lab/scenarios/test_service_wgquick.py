"""A daemon that behaves like a service: the kill switch outlives a kill -9 and goes
with `tidewire down`; wg-quick's Table, FwMark, PostUp/PreDown/PostDown and SaveConfig
do what wg-quick does with them.

    [client] eth0 198.51.100.2 -- 198.51.100.1 isp0 [provider] wan0 203.0.113.1 -- [internet]
    tunnel 10.99.0.2 ------------------> 10.99.0.1 (exit)  lan0             203.0.113.2
                                                       192.168.77.0/24 [lan]

The kill switch test (the exit lab of topologies.py, whose provider also has a LAN,
192.168.77.0/24): the client (kill_switch, FwMark 0x4242, all traffic through the
provider) reaches the internet through the tunnel but not the provider's outside
address around it; after kill -9 the internet is not reachable either (the rules hold
with no daemon); `tidewire down twcli` removes them and the provider's outside address
answers again. Then the exit is killed: its forwarding switch stays on until the next
start of the node, which puts it back (a new namespace has it off).

The wg-quick test, on the client and provider addresses alone: the client runs from a
wg-quick file (Table = 1234, hooks, SaveConfig); its peer's TOML has table = "off".
"""

import json
import shutil
from pathlib import Path

from common import handshaken, ping, unreachable
from lab import TIDEWIRE, Lab, Node, _answers, genkey, tidewire_toml
from topologies import build_exit_lab

from tidewire.node.config import load


def provider_toml(lab: Lab, key: str, client_public: str) -> str:
    """The wg-quick client's peer: a plain node with table = "off"."""
    peer = {
        "public_key": client_public,
        "allowed_ips": ["10.99.0.2/32", "10.66.0.0/16"],
        "mode": "wireguard",
    }
    text = tidewire_toml(
        name="twexit", private_key=key, address=["10.99.0.1/24"], lab=lab,
        listen_port=51820, peers=[peer],
    )
    return text.replace("mtu = 1420\n", 'mtu = 1420\ntable = "off"\n')


def test_kill_switch_holds_after_kill_9_and_goes_with_down() -> None:
    with Lab("ksw") as lab:
        x = build_exit_lab(lab, with_wireguard_go=False)
        client = x.client
        x.client_node.cli("down")  # the exit lab's client, again with a kill switch
        lab.wait_for(lambda: not x.client_node.proc.alive(), timeout=10, what="twcli to stop")
        client_conf = x.client_node.config.read_text().replace(
            "mtu = 1420\n", "mtu = 1420\nkill_switch = true\nfwmark = 0x4242\n"
        )
        node = lab.tidewire(client, "twcli", client_conf)
        assert "table inet tidewire_killswitch_twcli" in client.run("nft list tables").stdout
        # FwMark: wg-quick's rule names the mark, and the sockets carry it (else the
        # tunnel's own datagrams would loop into the tunnel and never handshake)
        assert "not from all fwmark 0x4242 lookup 16962" in client.run("ip rule show").stdout
        ping(client, "203.0.113.2")  # the internet, through the tunnel
        assert unreachable(client, "198.51.100.1"), "the provider's outside, around the tunnel"
        assert unreachable(client, "192.168.77.2"), "the provider's LAN (refused by the exit)"

        node.proc.popen.kill()  # kill -9: no tear-down at all
        node.proc.popen.wait(timeout=10)
        assert "tidewire_killswitch_twcli" in client.run("nft list tables").stdout
        assert unreachable(client, "203.0.113.2"), "traffic left outside the dead tunnel"
        assert unreachable(client, "198.51.100.1")

        down = node.cli("down", "twcli")
        assert "removed the kill switch" in down.stdout, down.stdout + down.stderr
        assert "tidewire_killswitch" not in client.run("nft list tables").stdout
        ping(client, "198.51.100.1")  # the switch was what stopped it
        record = lab.tmp / "state" / "twcli" / "killswitch.json"
        assert record.exists()  # the dead daemon's record: the next start clears it

        node = lab.tidewire(client, "twcli", client_conf.replace("kill_switch = true\n", ""))
        assert not record.exists() and "killswitch" not in client.run("nft list tables").stdout
        node.cli("down")
        lab.wait_for(lambda: not node.proc.alive(), timeout=10, what="the client to stop")

        # the exit killed: forwarding stays on; the next start, even as no exit, restores it
        provider = x.provider_node.host
        forwarding = "sysctl -n net.ipv4.ip_forward"
        assert provider.run(forwarding).stdout.strip() == "1"
        x.provider_node.proc.popen.kill()
        x.provider_node.proc.popen.wait(timeout=10)
        assert provider.run(forwarding).stdout.strip() == "1"
        plain = x.provider_node.config.read_text().replace("enabled = true", "enabled = false")
        again = lab.tidewire(provider, "twexit", plain)
        assert provider.run(forwarding).stdout.strip() == "0", again.proc.log()
        assert "forwarding switches a killed exit left on" in again.proc.log()


WG_CLIENT = """# the client's tunnel (a comment SaveConfig keeps)
[Interface]
PrivateKey = {key}
Address = 10.99.0.2/32
Table = 1234
PostUp = echo up %i > {hooks}
PostUp = ip rule add to 10.99.0.0/24 table 1234 priority 100
PreDown = echo pre-down %i >> {hooks}
PostDown = ip rule del to 10.99.0.0/24 table 1234 priority 100; echo post-down %i >> {hooks}
SaveConfig = true

# the provider
[Peer]
PublicKey = {provider}
Endpoint = 198.51.100.1:51820
AllowedIPs = 10.99.0.0/24, 10.88.0.0/16
PersistentKeepalive = 1
"""


def test_wg_quick_table_hooks_and_save_config() -> None:
    name = "twsvc"
    state = Path("/var/lib/tidewire") / name
    with Lab("wgq") as lab:
        client, provider = lab.host("client"), lab.host("provider")
        lab.link(client, provider, "198.51.100.2/24", "198.51.100.1/24")
        (k_prov, p_prov), (k_cli, p_cli) = genkey(), genkey()
        prov = lab.tidewire(provider, "twexit", provider_toml(lab, k_prov, p_cli))
        # Table = off: no route of the peer's allowed IPs (only the address's own prefix)
        assert provider.run("ip route show 10.66.0.0/16").stdout.strip() == ""
        assert "10.99.0.2" not in provider.run("ip route show dev twexit").stdout

        hooks = lab.tmp / "hooks.log"
        text = WG_CLIENT.format(key=k_cli, provider=p_prov, hooks=hooks)
        conf = lab.tmp / f"{name}.conf"
        conf.write_text(text)
        conf.chmod(0o600)
        sock = Path("/run/tidewire") / f"{name}.sock"
        proc = client.spawn([TIDEWIRE, "up", str(conf)], name=f"tidewire-{name}")
        node = Node(client, name, conf, sock, proc)
        try:
            lab.wait_for(lambda: hooks.exists() or not proc.alive(), timeout=15, what="PostUp")
            lab.wait_for(lambda: _answers(sock), timeout=15, what=f"{name} to start")
            assert hooks.read_text() == f"up {name}\n"  # PostUp, with %i
            # Table = 1234: every route in that table, none in main, no tidewire rule
            table = client.run("ip route show table 1234").stdout
            assert "10.99.0.0/24 dev twsvc" in table and "10.88.0.0/16 dev twsvc" in table, table
            assert "10.88.0.0" not in client.run("ip route show table main").stdout
            assert "fwmark" not in client.run("ip rule show").stdout
            lab.wait_for(lambda: handshaken(node), timeout=15, what="the client's handshake")
            ping(client, "10.99.0.1")  # through the rule PostUp added

            # a peer added at run time: into table 1234, and into the file at stop
            _, p_new = genkey()
            node.cli("peer", "add", name, p_new, "--allowed-ips", "10.77.0.0/24")
            assert "10.77.0.0/24 dev twsvc" in client.run("ip route show table 1234").stdout
            node.cli("down")
            lab.wait_for(lambda: not proc.alive(), timeout=15, what=f"{name} to stop")
            assert hooks.read_text() == f"up {name}\npre-down {name}\npost-down {name}\n"
            assert "priority 100" not in client.run("ip rule show").stdout  # PostDown's work
            saved = conf.read_text()
            assert saved.startswith(text)  # comments and hooks as they were
            added = f"\n[Peer]\nPublicKey = {p_new}\nAllowedIPs = 10.77.0.0/24\n"
            assert saved[len(text) :] == added
            keys = [p.public_key for p in load(conf).peers]
            assert len(keys) == 2
            assert json.loads(prov.cli("status", "--json").stdout)["peers"]
        finally:
            if proc.alive():
                proc.popen.terminate()
                proc.popen.wait(timeout=10)
            shutil.rmtree(state, ignore_errors=True)
