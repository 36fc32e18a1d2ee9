"""Strangers cannot make the DHT node work or grow without bound (issue 15, "Bad input"):
queries are rate-limited per source and in total, in virtual time, the table of
sources is bounded, and every store a query reaches (peers, items, a lookup's
candidates) stays within its bound, counting what it refuses. Malformed datagrams,
wrong signatures and replays are covered in test_dht_node.py, test_dht_formats.py and
test_node_records.py."""

import random

from tidewire.protocol.dht import krpc, limits, lookup, storage
from tidewire.protocol.dht.limits import Bucket, QueryLimits
from tidewire.protocol.dht.node import DhtNode
from tidewire.protocol.dht.storage import ItemStore, PeerStore

from .dht_sim import rng_for

Address = tuple[str, int]


def _ping(node: DhtNode, addr: Address, *, now: float) -> bool:
    """Send one ping from `addr`; True if it was answered."""
    node.receive(krpc.query(b"pq", "ping", bytes(19) + b"\x01"), addr, now=now)
    return any(to == addr for _, to in node.datagrams())


def test_a_flood_from_one_source_does_not_starve_another() -> None:
    node = DhtNode(bytes(20), rng=rng_for(1), now=0.0)
    flooder, honest = ("198.51.100.66", 6881), ("192.0.2.10", 6881)
    flood_answered = honest_answered = 0
    for ms in range(10_000):  # 10 s: the flooder at 1,000 queries a second
        now = ms / 1000
        flood_answered += _ping(node, flooder, now=now)
        if ms % 1000 == 500:  # the honest node once a second
            honest_answered += _ping(node, honest, now=now)
    assert honest_answered == 10
    # the flooder got its burst and its rate, no more
    assert flood_answered <= limits.SOURCE_BURST + 10 * limits.SOURCE_RATE + 1
    assert node.drops["query_rate_limited_source"] == 10_000 - flood_answered
    assert "query_rate_limited_total" not in node.drops


def test_a_source_over_its_rate_gets_a_query_answered_when_a_token_is_back() -> None:
    node = DhtNode(bytes(20), rng=rng_for(2), now=0.0)
    src = ("192.0.2.20", 1)
    assert all(_ping(node, src, now=10.0) for _ in range(int(limits.SOURCE_BURST)))
    assert not _ping(node, src, now=10.0)
    assert not _ping(node, src, now=10.0 + 0.5 / limits.SOURCE_RATE)  # half a token back
    assert _ping(node, src, now=10.0 + 1.25 / limits.SOURCE_RATE)
    assert node.drops == {"query_rate_limited_source": 2}


def test_many_sources_together_meet_the_total_budget() -> None:
    node = DhtNode(bytes(20), rng=rng_for(3), now=0.0)
    answered = 0
    for i in range(2000):  # 2,000 sources, one query each, within one second
        answered += _ping(node, (f"10.{i // 250}.{i % 250}.1", 6881), now=i / 2000)
    assert answered <= limits.TOTAL_BURST + limits.TOTAL_RATE + 1
    assert node.drops["query_rate_limited_total"] == 2000 - answered


def test_the_table_of_sources_is_bounded_and_counts_evictions() -> None:
    q = QueryLimits(max_sources=100)
    for i in range(350):
        assert q.refusal(f"10.0.{i // 250}.{i % 250}", now=i / 1000) is None
    assert len(q.sources) == 100 and q.evicted == 250
    # the most recently heard stay: the flooder's bucket is still empty
    for _ in range(int(limits.SOURCE_BURST)):
        q.refusal("10.0.1.99", now=1.0)
    assert q.refusal("10.0.1.99", now=1.0) == "query_rate_limited_source"
    # an idle source is forgotten once its bucket would be full again
    assert q.refusal("10.0.0.1", now=1.0 + limits.SOURCE_BURST / limits.SOURCE_RATE + 0.1) is None
    assert len(q.sources) < 100


def test_a_bucket_starts_full_and_refills_at_its_rate() -> None:
    b = Bucket(2.0, 3.0)
    assert [b.take(now=5.0) for _ in range(4)] == [True, True, True, False]
    assert not b.take(now=5.4) and b.take(now=5.5)
    assert [b.take(now=100.0) for _ in range(4)] == [True, True, True, False]


def test_the_peer_store_keeps_its_bounds() -> None:
    ps = PeerStore()
    for i in range(storage.MAX_HASHES + 10):
        ps.announce(i.to_bytes(20, "big"), ("192.0.2.1", 1), now=0.0)
    assert len(ps.peers) == storage.MAX_HASHES and ps.counters["hash_refused"] == 10
    ps, swarm = PeerStore(), bytes(20)
    for i in range(storage.MAX_PEERS_PER_HASH + 7):
        ps.announce(swarm, (f"10.0.{i // 250}.{i % 250}", 6881), now=float(i))
    assert len(ps.peers[swarm]) == storage.MAX_PEERS_PER_HASH
    assert ps.counters["peer_evicted"] == 7
    assert len(ps.get(swarm, now=1.0)) <= storage.PEERS_PER_ANSWER


def test_the_item_store_keeps_its_bound() -> None:
    store = ItemStore()
    for i in range(storage.MAX_ITEMS + 5):
        store.put_immutable(b"%d:%d" % (len(str(i)), i), now=float(i))
    assert len(store.items) == storage.MAX_ITEMS and store.counters["item_evicted"] == 5


def test_an_oversized_put_is_refused_with_205_and_not_stored() -> None:
    node = DhtNode(bytes(20), rng=rng_for(4), now=0.0)
    me = ("192.0.2.7", 4000)
    node.receive(krpc.query(b"g", "get", bytes(20), target=bytes(20)), me, now=0.0)
    ((data, _),) = node.datagrams()
    answer = krpc.parse(data)
    assert isinstance(answer, krpc.Response)
    token = answer.values[b"token"]
    value = b"1001:" + bytes(1001)
    from tidewire.protocol.dht.bencode import Raw

    node.receive(krpc.query(b"p", "put", bytes(20), v=Raw(value), token=token), me, now=0.0)
    ((data, _),) = node.datagrams()
    refused = krpc.parse(data)
    assert isinstance(refused, krpc.Error) and refused.code == 205
    assert not node.items.items


def test_a_lookup_told_of_thousands_of_nodes_stays_bounded() -> None:
    lk = lookup.Lookup(bytes(20), "find_node")
    r = random.Random(5)
    for _ in range(20):
        lk.add([(r.randbytes(20), (f"10.1.{j // 250}.{j % 250}", j)) for j in range(500)])
    assert len(lk.candidates) <= lookup.MAX_CANDIDATES
