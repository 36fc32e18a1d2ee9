"""Gossip of node records with no DHT: a client learns a provider's record through the
one tidewire node it knows, and keeps it across a restart.

    [client] 198.51.100.2 ---- 198.51.100.1 [middle] 203.0.113.2 ---- 203.0.113.1 [provider]
    bootstrap = middle                 peers: client, provider        exit, share

No node has a DHT or allowed IPs for the others: the sessions carry control messages
only. The client names the middle node in `[discovery] bootstrap` (KEY@ENDPOINT); the
middle node has the provider as a peer. The provider signs its record for gossip, the
middle node pulls it (or is pushed it), and pushes it on to the client, whose
`tidewire discover --json` shows it with source "gossip". After the middle node stops
and the client restarts, the record is still there, read back from the state directory.
"""

from common import check_provider_record, discover, stop, wait_for_providers
from lab import Lab, genkey, tidewire_toml


def test_a_client_learns_a_provider_through_a_neighbour() -> None:
    with Lab("gossip") as lab:
        client, middle, provider = lab.host("client"), lab.host("middle"), lab.host("provider")
        lab.link(client, middle, "198.51.100.2/24", "198.51.100.1/24", a_if="eth0", b_if="eth0")
        lab.link(provider, middle, "203.0.113.1/24", "203.0.113.2/24", a_if="wan0", b_if="eth1")
        provider.run("ip route add default via 203.0.113.2")  # the exit's outbound interface
        (k_c, p_c), (k_m, p_m), (k_p, p_p) = genkey(), genkey(), genkey()
        no_dht = {"dht": False, "region": "lab"}
        prov = lab.tidewire(
            provider,
            "twprov",
            tidewire_toml(
                name="twprov",
                private_key=k_p,
                address=["10.99.0.1/24"],
                lab=lab,
                listen_port=51820,
                peers=[{"public_key": p_m}],
                exit={"enabled": True},
                share={"download": "40 Mbit/s", "max_clients": 10},
                discovery=no_dht,
            ),
        )
        mid = lab.tidewire(
            middle,
            "twmid",
            tidewire_toml(
                name="twmid",
                private_key=k_m,
                address=["10.98.0.1/32"],
                lab=lab,
                listen_port=51820,
                peers=[
                    {"public_key": p_c},
                    {
                        "public_key": p_p,
                        "endpoint": "203.0.113.1:51820",
                        "persistent_keepalive": 25,
                    },
                ],
                discovery=no_dht,
            ),
        )
        client_conf = tidewire_toml(
            name="twcli",
            private_key=k_c,
            address=["10.98.0.2/32"],
            lab=lab,
            discovery={**no_dht, "bootstrap": [f"{p_m}@udp://198.51.100.1:51820"]},
        )
        cli = lab.tidewire(client, "twcli", client_conf)

        [p], took = wait_for_providers(
            lab, cli, timeout=30, what="the client to learn the provider's record", show=(mid, prov)
        )
        print(f"the client had the provider's record {took:.1f} s after start")
        record_key = check_provider_record(p, private_key=k_p, public_key=p_p, source="gossip")
        assert discover(cli)["dht"]["port"] is None  # no DHT anywhere
        [seen_by_middle] = discover(mid)["providers"]
        assert seen_by_middle["source"] == "gossip"
        # gossip's counters are in the metrics registry: status --json and /metrics
        counted = cli.status()["discovery"]
        assert counted["records"]["taken_gossip"] >= 1 and counted["gossip_neighbours"] == 1
        assert counted["gossip_events"]["push_taken"] >= 1
        metrics = cli.cli("metrics").stdout
        assert 'tidewire_records_total{event="taken_gossip"}' in metrics, metrics
        # the provider's bootstrap-like peer (no allowed IPs) is no client of its exit
        assert prov.status()["roles"] == ["exit"]
        samples = prov.cli("metrics").stdout.splitlines()
        assert not [line for line in samples if line.startswith("tidewire_client_")], samples
        # the client's own cache is on disk once gossip took the record
        saved = lab.tmp / "state" / "twcli" / "records.json"
        lab.wait_for(saved.exists, timeout=10, what="the client to save its records")

        # the middle node goes away, the client restarts: the record comes from disk
        for node in (mid, cli):
            stop(lab, node)
        cli = lab.tidewire(client, "twcli", client_conf)
        [again] = discover(cli)["providers"]
        assert again["record_key"] == record_key.hex() and again["source"] == "disk"
        assert again["seq"] == p["seq"]
