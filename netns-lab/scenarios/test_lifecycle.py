"""The daemon's lifecycle on the exit lab (netns-lab/topologies.py): SIGTERM stops it
cleanly (SIGHUP reloads: test_reload.py), a restart after kill -9 clears the rules of
the killed run's random port, and a peer cannot take an allowed IP another peer holds."""

import signal

from common import ping
from lab import Lab, genkey
from topologies import build_exit_lab


def _fwmark_rules(host) -> str:  # type: ignore[no-untyped-def]
    return "".join(host.run(f"ip {family} rule show").stdout for family in ("-4", "-6"))


def test_sigterm_stops_cleanly_and_a_restart_clears_a_killed_runs_rules() -> None:
    with Lab("life") as lab:
        x = build_exit_lab(lab, with_wireguard_go=False)
        ping(x.client, "203.0.113.2")
        config = x.client_node.config.read_text()
        port = x.client_node.status()["listen_port"]
        x.client_node.proc.popen.kill()  # kill -9: its policy rules stay behind
        x.client_node.proc.popen.wait(timeout=10)
        assert f"lookup {port}" in _fwmark_rules(x.client)
        node = lab.tidewire(x.client, "twcli", config)  # a random port again: a new table
        new_port = node.status()["listen_port"]
        assert new_port != port
        rules = _fwmark_rules(x.client)
        assert f"lookup {port}" not in rules and f"lookup {new_port}" in rules, rules
        ping(x.client, "203.0.113.2")
        node.proc.popen.send_signal(signal.SIGTERM)
        lab.wait_for(lambda: not node.proc.alive(), timeout=10, what="SIGTERM to stop the node")
        assert node.proc.popen.returncode == 0
        assert "stopping (SIGTERM)" in node.proc.log()
        rules = _fwmark_rules(x.client)
        assert "fwmark" not in rules and "suppress_prefixlength" not in rules, rules
        assert "twcli" not in x.client.run("ip -br link").stdout


def test_an_allowed_ip_of_another_peer_is_refused() -> None:
    with Lab("steal") as lab:
        x = build_exit_lab(lab, with_wireguard_go=False)
        ping(x.client, "203.0.113.2")
        thief = genkey()[1]
        res = x.provider_node.cli(
            "peer", "add", "twexit", thief, "--allowed-ips", "10.99.0.2/32", check=False
        )
        assert res.returncode == 1 and "belongs to peer" in res.stderr, res.stderr
        keys = [p["public_key"] for p in x.provider_node.status()["peers"]]
        assert thief not in keys
        ping(x.client, "203.0.113.2")  # the first peer's traffic still flows
        # asked to, the new peer takes the prefix over, and the old one no longer has it
        x.provider_node.cli(
            "peer", "add", "twexit", thief, "--allowed-ips", "10.99.0.2/32", "--move"
        )
        held = {p["public_key"]: p["allowed_ips"] for p in x.provider_node.status()["peers"]}
        assert held[thief] == ["10.99.0.2/32"]
        assert sum("10.99.0.2/32" in ips for ips in held.values()) == 1
        log = x.provider_node.proc.log()
        assert "allowed IP 10.99.0.2/32 moved from peer" in log and "added" in log
        # the registry behind status, as Prometheus text
        metrics = x.provider_node.cli("metrics", "twexit").stdout
        assert "# TYPE tidewire_peers gauge\ntidewire_peers 3\n" in metrics
        assert 'tidewire_peer_rx_bytes_total{peer="' in metrics
