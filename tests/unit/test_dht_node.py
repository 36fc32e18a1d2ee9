"""The DHT node in a simulated network, in virtual time: bootstrap, lookups,
announces, BEP 44 puts and gets, the errors a storing node sends, lost nodes, and
strangers' bytes."""

import hashlib
import random

from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from tidewire.protocol.dht import bencode, items, krpc
from tidewire.protocol.dht.node import DhtNode, LookupDone, StoreDone
from tidewire.protocol.dht.table import K

from .dht_sim import Net, rng_for

Address = tuple[str, int]


def events(node: DhtNode) -> list[object]:
    return list(node.take_events())


def test_bootstrap_fills_routing_tables() -> None:
    net = Net(40)
    net.bootstrap_all()
    sizes = [len(n.table) for n in net.nodes.values()]
    assert min(sizes) >= K, sizes


def test_a_lookup_finds_the_nodes_nearest_the_target() -> None:
    net = Net(60)
    net.bootstrap_all()
    target = hashlib.sha1(b"target").digest()
    asker = list(net.nodes.values())[-1]
    op = asker.lookup("find_node", target, now=net.now)
    net.run(10)
    done = [e for e in events(asker) if isinstance(e, LookupDone) and e.op == op]
    assert done
    found = [node_id for node_id, _ in done[0].nodes]
    truth = sorted(
        (n.id for n in net.nodes.values() if n is not asker),
        key=lambda i: int.from_bytes(i, "big") ^ int.from_bytes(target, "big"),
    )[:K]
    assert found[:3] == truth[:3]
    assert len(set(found) & set(truth)) >= K - 1


def test_an_announced_peer_is_found_by_get_peers() -> None:
    net = Net(50)
    net.bootstrap_all()
    nodes = list(net.nodes.values())
    info_hash = hashlib.sha1(b"tidewire rendezvous eu 2026-12-01").digest()
    op = nodes[5].announce(info_hash, 51820, now=net.now)
    net.run(10)
    stored = [e for e in events(nodes[5]) if isinstance(e, StoreDone) and e.op == op]
    assert stored and stored[0].stored >= K - 1 and not stored[0].errors
    op = nodes[30].lookup("get_peers", info_hash, now=net.now)
    net.run(10)
    done = [e for e in events(nodes[30]) if isinstance(e, LookupDone) and e.op == op]
    announcer = next(a for a, n in net.nodes.items() if n is nodes[5])
    assert (announcer[0], 51820) in done[0].peers


def test_a_mutable_item_is_put_and_the_newest_is_got() -> None:
    net = Net(50)
    net.bootstrap_all()
    nodes = list(net.nodes.values())
    key = SigningKey(bytes(range(32)))
    salt = b"tidewire-node-record"
    for seq in (1, 2):
        item = items.sign(key, bencode.encode({"seq": seq}), seq, salt)
        op = nodes[3].put(item, now=net.now)
        net.run(10)
        stored = [e for e in events(nodes[3]) if isinstance(e, StoreDone) and e.op == op]
        assert stored[0].stored >= K - 1, stored
    target = items.mutable_target(bytes(key.verify_key), salt)
    op = nodes[40].get_item(target, salt=salt, now=net.now)
    net.run(10)
    done = [e for e in events(nodes[40]) if isinstance(e, LookupDone) and e.op == op]
    assert done[0].item is not None and done[0].item.seq == 2
    assert bencode.decode(done[0].item.value) == {b"seq": 2}


def test_an_immutable_item_round_trips() -> None:
    net = Net(30)
    net.bootstrap_all()
    nodes = list(net.nodes.values())
    value = bencode.encode(b"Hello World!")
    nodes[1].put_immutable(value, now=net.now)
    net.run(10)
    op = nodes[20].get_item(items.immutable_target(value), now=net.now)
    net.run(10)
    done = [e for e in events(nodes[20]) if isinstance(e, LookupDone) and e.op == op]
    assert done[0].value == value


def _get_token(node: DhtNode, me: Address, target: bytes) -> bytes:
    node.receive(krpc.query(b"g", "get", bytes(20), target=target), me, now=0.0)
    ((data, _),) = node.datagrams()
    r = krpc.parse(data)
    assert isinstance(r, krpc.Response)
    token = r.values[b"token"]
    assert isinstance(token, bytes)
    return token


def _put(
    node: DhtNode, me: Address, item: items.MutableItem, token: bytes, **extra: object
) -> krpc.Message:
    args: dict[str, object] = {"k": item.key, "seq": item.seq, "sig": item.sig, "token": token}
    args["v"] = bencode.Raw(item.value)
    args.update(extra)
    if item.salt:
        args["salt"] = item.salt
    node.receive(krpc.query(b"p", "put", bytes(20), **args), me, now=0.0)
    ((data, _),) = node.datagrams()
    return krpc.parse(data)


def test_a_storing_node_answers_with_the_beps_error_codes() -> None:
    node = DhtNode(bytes(range(20)), rng=rng_for(3), now=0.0)
    me = ("192.0.2.7", 4000)
    key = SigningKey(bytes(32))
    item5 = items.sign(key, b"i5e", 5)
    target = item5.target
    token = _get_token(node, me, target)
    assert isinstance(_put(node, me, item5, token), krpc.Response)
    older = _put(node, me, items.sign(key, b"i4e", 4), token)
    assert isinstance(older, krpc.Error) and older.code == items.SEQ_TOO_LOW
    cas = _put(node, me, items.sign(key, b"i6e", 6), token, cas=3)
    assert isinstance(cas, krpc.Error) and cas.code == items.CAS_MISMATCH
    forged = items.MutableItem(item5.key, 7, b"i7e", item5.sig)
    bad = _put(node, me, forged, token)
    assert isinstance(bad, krpc.Error) and bad.code == items.INVALID_SIGNATURE
    no_token = _put(node, me, items.sign(key, b"i8e", 8), b"wrong")
    assert isinstance(no_token, krpc.Error) and no_token.code == krpc.PROTOCOL_ERROR
    other_ip = _put(node, ("198.51.100.1", 4000), items.sign(key, b"i8e", 8), token)
    assert isinstance(other_ip, krpc.Error)
    stored = node.items.get(target, now=0.0)
    assert stored is not None and stored.item is not None and stored.item.seq == 5


def test_tokens_expire_after_two_rotations() -> None:
    node = DhtNode(bytes(range(20)), rng=rng_for(4), now=0.0)
    me = ("192.0.2.7", 4000)
    token = _get_token(node, me, bytes(20))
    node.handle_timer(now=301.0)
    assert node.tokens.valid(token, me[0])
    node.handle_timer(now=602.0)
    assert not node.tokens.valid(token, me[0])


def test_lookups_end_when_nodes_are_lost() -> None:
    net = Net(40)
    net.bootstrap_all()
    addrs = list(net.nodes)
    net.down.update(addrs[10:30])
    asker = net.nodes[addrs[-1]]
    op = asker.lookup("find_node", hashlib.sha1(b"x").digest(), now=net.now)
    net.run(30)
    assert any(isinstance(e, LookupDone) and e.op == op for e in events(asker))
    assert not asker.pending or all(p.op != op for p in asker.pending.values())


def test_a_flood_of_new_ids_does_not_grow_the_table_past_its_bound() -> None:
    node = DhtNode(bytes(20), rng=rng_for(5), now=0.0)
    r = random.Random(9)
    for i in range(5000):
        sender = r.randbytes(20)
        q = krpc.query(b"t", "ping", sender)
        node.receive(q, (f"10.{i // 250 % 250}.{i % 250}.{i // 62500 + 1}", 1000 + i), now=i / 100)
        node.datagrams()
    assert len(node.table) <= 160 * K
    assert all(len(b.nodes) <= K and len(b.replacements) <= K for b in node.table.buckets)


def test_an_answer_nobody_asked_for_is_dropped() -> None:
    node = DhtNode(bytes(20), rng=rng_for(6), now=0.0)
    node.receive(krpc.response(b"zz", bytes(range(20))), ("192.0.2.1", 1), now=0.0)
    assert node.drops == {"krpc_unexpected_answer": 1} and len(node.table) == 0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=120), max_size=8))
def test_random_datagrams_never_raise_and_answers_stay_bounded(datagrams: list[bytes]) -> None:
    node = DhtNode(bytes(20), rng=rng_for(7), now=0.0)
    for d in datagrams:
        node.receive(d, ("192.0.2.1", 1), now=0.0)
        for data, _ in node.datagrams():
            assert len(data) < 1500
    assert not node.pending


def test_a_node_tells_its_own_record_when_asked() -> None:
    from tidewire.protocol.dht.node import RecordAnswer

    net = Net(3)
    (a, na), (_, nb), (c, _) = net.nodes.items()
    item = items.sign(SigningKey(bytes(32)), b"4:rec1", 9, b"tidewire/v1/node")
    na.own_record = item
    ops = {nb.fetch_record(a, now=net.now): "has", nb.fetch_record(c, now=net.now): "none"}
    net.down.add(("10.9.9.1", 6881))
    ops[nb.fetch_record(("10.9.9.1", 6881), now=net.now)] = "down"
    net.run(5)
    got = {ops[e.op]: e.item for e in nb.take_events() if isinstance(e, RecordAnswer)}
    assert got == {"has": item, "none": None, "down": None}
    assert not nb.pending
