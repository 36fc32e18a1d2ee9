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
from lab import Lab
from overlay_lab import build_gossip_line


def test_a_client_learns_a_provider_through_a_neighbour() -> None:
    with Lab("gossip") as lab:
        x = build_gossip_line(lab)
        client, prov, mid, cli, client_conf = x.client, x.prov, x.mid, x.cli, x.client_conf
        k_p, p_p = x.provider_key, x.provider_pub
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
