"""Node records (protocol/control/records.py), the record cache and rendezvous hashes
(node/core/discovery.py), and finding the newest valid record in a DHT of 500 nodes
with churn and Sybils next to the target."""

import contextlib
import dataclasses
import hashlib
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from tidewire.node.core.discovery import RecordCache, rendezvous
from tidewire.protocol.control import records
from tidewire.protocol.control.records import NodeRecord, RecordError
from tidewire.protocol.dht import bencode, items
from tidewire.protocol.dht.node import LookupDone
from tidewire.protocol.dht.storage import Stored

from .dht_sim import Net

NOW = 1_764_547_200.0  # 2025-12-01 00:00:00 UTC
KEY = SigningKey(bytes(range(32)))

RECORD = NodeRecord(
    public_key=bytes(range(32)),
    overlay="fd74:7700::1",
    endpoints=("masked://203.0.113.5:8443", "udp://203.0.113.5:51820"),
    roles=("provider",),
    price=250_000,
    capacity=50_000_000,
    clients=16,
    load=12,
    region="eu-west",
    version="tidewire 0.1.0",
    expiry=int(NOW) + 7200,
)


def make(seq: int = 1, **changes: Any) -> items.MutableItem:
    return records.make(dataclasses.replace(RECORD, **changes), KEY, seq=seq)


def test_a_record_round_trips_and_names_its_signing_key() -> None:
    item = make(seq=1_764_547_200_000_000)
    assert item.salt == b"tidewire/v1/node" and len(item.value) <= 1000
    rec = records.verify(item, now=NOW)
    assert rec.record_key == bytes(KEY.verify_key)
    assert dataclasses.replace(rec, record_key=b"") == dataclasses.replace(
        RECORD, seq=1_764_547_200_000_000
    )


def test_a_paid_relay_says_its_price_and_a_record_without_it_encodes_as_before() -> None:
    plain = make(seq=5)
    assert b"rprice" not in plain.value  # an unpaid relay or a provider: no new key
    paid = make(seq=5, roles=("relay",), relay_price=40_000)
    assert b"6:rpricei40000e" in paid.value
    rec = records.verify(paid, now=NOW)
    assert rec.relay_price == 40_000 and rec.roles == ("relay",)
    assert records.verify(plain, now=NOW).relay_price is None
    doc = bencode.decode(paid.value)
    assert isinstance(doc, dict)
    doc[b"rprice"] = -1
    with pytest.raises(RecordError, match="rprice"):
        records.verify(resign(bencode.encode(doc), seq=5), now=NOW)


def test_the_cache_finds_a_record_by_its_link_key() -> None:
    cache = RecordCache()
    cache.offer(make(seq=1, roles=("relay",), relay_price=7), source="gossip", now=NOW)
    cache.offer(make(seq=2, roles=("relay",), relay_price=9), source="gossip", now=NOW)
    rec = cache.record_of(RECORD.public_key, now=NOW)
    assert rec is not None and rec.relay_price == 9
    assert cache.record_of(bytes(32), now=NOW) is None
    assert cache.record_of(RECORD.public_key, now=RECORD.expiry + 1) is None  # expired


def resign(value: bytes, seq: int = 1, salt: bytes = records.SALT) -> items.MutableItem:
    return items.sign(KEY, value, seq, salt)


@pytest.mark.parametrize(
    ("item", "why"),
    [
        (lambda: dataclasses.replace(make(), sig=bytes(64)), "signature"),
        (lambda: resign(make().value, salt=b"other"), "another salt"),
        (lambda: make(expiry=int(NOW) - 1), "expired"),
        (lambda: resign(make(seq=2).value, seq=3), "differ"),
        (lambda: resign(b"d3:keyi1ee"), "key"),
        (lambda: resign(make().value.replace(b"8:provider", b"8:gateway!")), "roles"),
        (lambda: resign(b"d4:addr1:a3:key32:" + bytes(32) + b"e"), "ends"),
        (lambda: resign(b"li1ee"), "canonical"),
    ],
)
def test_verify_refuses_bad_records(item: object, why: str) -> None:
    with pytest.raises(RecordError, match=why):
        records.verify(item(), now=NOW)  # type: ignore[operator]


def test_a_record_too_big_for_bep44_is_refused_at_making() -> None:
    with pytest.raises(ValueError, match="limit is 1000"):
        make(endpoints=tuple(f"tls://{'x' * 100}.example:{i}" for i in range(8)))


def test_unordered_keys_are_not_canonical() -> None:
    doc = bencode.decode(make().value)
    assert isinstance(doc, dict)
    value = (
        b"d"
        + b"".join(bencode.encode(k) + bencode.encode(v) for k, v in reversed(list(doc.items())))
        + b"e"
    )
    with pytest.raises(RecordError, match="canonical"):
        records.verify(resign(value), now=NOW)


@settings(max_examples=200)
@given(st.binary(max_size=300))
def test_any_signed_value_is_a_record_or_a_record_error(value: bytes) -> None:
    with contextlib.suppress(RecordError):
        records.verify(resign(value), now=NOW)


def test_the_cache_takes_newer_records_and_refuses_replays() -> None:
    cache = RecordCache()
    assert cache.offer(make(seq=5), source="dht", now=NOW) is not None
    assert cache.offer(make(seq=5), source="gossip", now=NOW) is None
    assert cache.offer(make(seq=4, load=0), source="gossip", now=NOW) is None
    assert cache.offer(make(seq=6, load=90), source="gossip", now=NOW) is not None
    assert cache.providers(region="eu-west", now=NOW)[0].record.load == 90
    assert cache.providers(region="us-east", now=NOW) == []
    forged = dataclasses.replace(make(seq=7), sig=bytes(64))
    assert cache.offer(forged, source="dht", now=NOW) is None
    assert cache.counters == {"taken_dht": 1, "stale": 2, "taken_gossip": 1, "invalid": 1}
    assert cache.providers(region=None, now=NOW + 7201) == []  # expired


def test_the_cache_is_bounded() -> None:
    cache = RecordCache(limit=10)
    for i in range(50):
        key = SigningKey(hashlib.sha256(b"%d" % i).digest())
        rec = dataclasses.replace(RECORD, expiry=int(NOW) + 100 + i)
        assert cache.offer(records.make(rec, key, seq=1), source="dht", now=NOW)
    assert len(cache.records) == 10 and cache.counters["evicted"] == 40
    assert len(cache.seen) <= 20


def test_rendezvous_changes_with_the_utc_day_and_the_region() -> None:
    day = rendezvous("eu-west", NOW)
    assert day == hashlib.sha1(b"tidewire/v1/rendezvous/eu-west/2025-12-01").digest()
    assert rendezvous("eu-west", NOW + 86399) == day
    assert rendezvous("eu-west", NOW + 86400) != day
    assert rendezvous("us-east", NOW) != day


def test_the_newest_valid_record_wins_over_churn_and_sybils() -> None:
    """500 nodes; 8 Sybils with ids next to the record's target serve a stale (validly
    signed, older) record or a forged newer one; a fifth of the honest nodes leave
    after the put. The lookup still returns the newest valid record."""
    net = Net(500, seed=11)
    old, new = make(seq=100), make(seq=200, load=40)
    target = new.target
    forged = dataclasses.replace(make(seq=900, load=0), sig=bytes(64))
    sybils = []
    for i in range(8):
        near = bytearray(target)
        near[19] ^= i + 1
        addr = net.add(bytes(near), seed=900 + i)
        stale = Stored(old.value, old, 1e12) if i % 2 else Stored(forged.value, forged, 1e12)
        net.nodes[addr].items.items[target] = stale
        sybils.append(addr)
    net.bootstrap_all(step=1.0)
    nodes = list(net.nodes.items())
    publisher = nodes[3][1]
    publisher.put(new, now=net.now)
    net.run(10)
    honest = [a for a, _ in nodes if a not in sybils]
    net.down.update(random.Random(5).sample(honest[10:], len(honest) // 5))
    asker = nodes[1][1]
    op = asker.get_item(target, salt=records.SALT, now=net.now)
    net.run(30)
    done = [e for e in asker.take_events() if isinstance(e, LookupDone) and e.op == op]
    assert done and done[0].item is not None
    assert done[0].item.seq == 200
    assert records.verify(done[0].item, now=NOW).load == 40
    assert asker.drops.get("item_206", 0) >= 1  # the forged copies were seen and refused


def test_the_link_key_is_under_the_records_signature() -> None:
    """The Ed25519 side of the binding: the X25519 key is inside the signed value."""
    item = make(seq=3)
    other = dataclasses.replace(RECORD, public_key=bytes(32), seq=3).value()
    assert len(other) == len(item.value) and other != item.value
    with pytest.raises(RecordError):
        records.verify(dataclasses.replace(item, value=other), now=NOW)


def test_a_session_confirmed_binding_drops_records_naming_the_link_key_elsewhere() -> None:
    """The X25519 side: anyone may sign a record naming another node's link key; once a
    session shows the Ed25519 key that node holds, such records are dropped and refused."""
    cache = RecordCache()
    forger = SigningKey(bytes(range(1, 33)))
    forged = records.make(dataclasses.replace(RECORD, price=0), forger, seq=9)
    assert cache.offer(make(seq=5), source="dht", now=NOW) is not None
    assert cache.offer(forged, source="gossip", now=NOW) is not None  # not yet known false
    cache.confirm(RECORD.public_key, bytes(KEY.verify_key))
    assert list(cache.records) == [bytes(KEY.verify_key)]
    again = records.make(dataclasses.replace(RECORD, price=0), forger, seq=10)
    assert cache.offer(again, source="dht", now=NOW) is None
    assert cache.offer(make(seq=6), source="dht", now=NOW) is not None  # the node's own
    assert cache.counters["unbound"] == 2
