"""Discovery's counters (the DHT's, gossip's, the record cache's) are in the node's
metrics registry: rendered for /metrics and read into `status --json`."""

from pathlib import Path

import trio
from nacl.signing import SigningKey

from tidewire.node.config import DiscoverySpec
from tidewire.node.core.gossip import Gossip
from tidewire.node.dht import DhtService
from tidewire.node.discovery import Discovery
from tidewire.node.discovery_report import STATUS_FAMILIES
from tidewire.node.metrics import Registry
from tidewire.protocol.dht import krpc
from tidewire.protocol.dht.items import MutableItem


def test_dht_gossip_and_record_counters_reach_metrics_and_status(tmp_path: Path) -> None:
    async def main() -> tuple[str, str, dict[str, object]]:
        disc = Discovery(
            DiscoverySpec(dht=True),
            state_dir=tmp_path,
            sign_key=SigningKey(bytes(32)),
            own_record=None,
        )
        reg = Registry()
        disc.register(reg)
        before = reg.render()  # no DHT socket yet: the families are there, empty or 0
        disc.svc = DhtService.bind("127.0.0.1", 0)
        try:
            node = disc.svc.node
            node.receive(b"not bencode", ("192.0.2.1", 1), now=0.0)
            node.receive(krpc.query(b"t", "ping", bytes(20)), ("192.0.2.1", 1), now=0.0)
            for _ in range(40):  # over the per-source burst
                node.receive(krpc.query(b"t", "ping", bytes(20)), ("192.0.2.2", 1), now=0.0)
            disc.gossip = Gossip(
                cache=disc.cache,
                send=lambda key, msg: None,
                own_key=bytes(32),
                epoch=bytes(8),
                wall_offset=0.0,
            )
            disc.gossip.connected(b"n" * 32, now=0.0)
            disc.cache.offer(MutableItem(b"k" * 32, 1, b"0:", b"s" * 64), source="dht", now=0.0)
            return before, reg.render(), disc.status(reg)
        finally:
            disc.svc.close()

    before, text, status = trio.run(main)
    assert "tidewire_dht_nodes 0" in before and "tidewire_gossip_neighbours 0" in before
    assert 'tidewire_dht_drops_total{reason="query_rate_limited_source"} 15' in text
    assert 'tidewire_dht_answered_total{method="ping"} 26' in text
    assert 'tidewire_gossip_events_total{event="pull_sent"} 1' in text
    assert "tidewire_gossip_neighbours 1" in text
    assert 'tidewire_records_total{event="invalid"} 1' in text
    assert "tidewire_records_held 0" in text
    assert set(status) == {
        n.removeprefix("tidewire_").removesuffix("_total") for n in STATUS_FAMILIES
    }
    assert status["dht_answered"] == {"ping": 26}
    assert status["gossip_events"] == {"pull_sent": 1}
    assert status["records_held"] == 0 and status["records"] == {"invalid": 1}
    assert status["dht_drops"]["query_rate_limited_source"] == 15  # type: ignore[index]


def test_a_providers_session_confirms_its_record_and_drops_a_forgery(tmp_path: Path) -> None:
    from tidewire.protocol.control import records
    from tidewire.protocol.control.records import NodeRecord

    link, real, forger = bytes(range(32)), SigningKey(bytes(32)), SigningKey(b"f" * 32)
    rec = NodeRecord(link, "fd74:7700::1", (), ("provider",), 0, 0, 0, 0, "lab", "t", 2**40)
    bindings: list[tuple[bytes, bytes]] = []
    disc = Discovery(
        DiscoverySpec(region="lab"),
        state_dir=tmp_path,
        sign_key=SigningKey(b"o" * 32),
        own_record=None,
        bindings=lambda: bindings,
    )
    disc.cache.offer(records.make(rec, real, seq=1), source="dht", now=0.0)
    disc.cache.offer(records.make(rec, forger, seq=2), source="dht", now=0.0)
    assert len(disc.report()["providers"]) == 2
    bindings.append((link, bytes(real.verify_key)))  # its invoices named its key
    [p] = disc.report()["providers"]
    assert p["record_key"] == bytes(real.verify_key).hex()
