"""Gossip of node records (protocol/control/gossip.py, node/core/gossip.py): a line of
neighbours A - B - C in virtual time, bounds, per-source rate limits, and records that
do not verify or are stale never passed on; hostile bytes into every parser."""

import contextlib
import dataclasses
from collections import deque
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.signing import SigningKey

from tidewire.node.core import gossip as core
from tidewire.node.core.control_plane import ControlPlane
from tidewire.node.core.discovery import RecordCache
from tidewire.protocol.control import channel, gossip, records, routes
from tidewire.protocol.dht.items import MutableItem
from tidewire.protocol.errors import RemoteProtocolError

from .test_node_records import RECORD

WALL = 1_764_547_200.0  # 2025-12-01 00:00:00 UTC at monotonic 0


def record_of(n: int, *, seq: int = 1, expiry: float = WALL + 7200) -> MutableItem:
    """Node n's record (test_node_records' sample, with n's keys), signed by n."""
    rec = dataclasses.replace(
        RECORD, public_key=bytes([n]) * 32, overlay=f"fd74:7700::{n}", expiry=int(expiry)
    )
    return records.make(rec, SigningKey(bytes([n]) * 32), seq=seq)


class Node:
    def __init__(self, name: str, net: "Net") -> None:
        self.name = name.encode()
        self.cache = RecordCache(limit=100)
        self.handlers: dict[type, Any] = {}
        self.on_established: list[Any] = []
        self.on_forget: list[Any] = []
        self.gossip = core.Gossip(
            cache=self.cache,
            send=lambda peer, msg: net.carry(self.name, peer, channel.encode(msg)),
            own_key=SigningKey(self.name * 32).verify_key.encode(),
            epoch=self.name * 8,
            wall_offset=WALL,
        )
        self.gossip.register(self)
        self.drops: dict[str, int] = {}

    def register(self, kind: type, handler: Any) -> None:
        self.handlers[kind] = handler

    def receive(self, src: bytes, data: bytes, *, now: float) -> None:
        try:
            msg = channel.decode(data)
            self.handlers[type(msg)](src, msg, now=now)
        except RemoteProtocolError as exc:
            self.drops[exc.reason] = self.drops.get(exc.reason, 0) + 1

    def held(self) -> set[bytes]:
        return set(self.cache.records)


class Net:
    """Datagrams between named nodes, delivered in order after `delay` seconds; a
    link can drop everything (`down`)."""

    def __init__(self, *names: str, delay: float = 0.01) -> None:
        self.nodes = {n.encode(): Node(n, self) for n in names}
        self.delay = delay
        self.now = 0.0
        self.queue: deque[tuple[float, bytes, bytes, bytes]] = deque()
        self.down: set[tuple[bytes, bytes]] = set()
        self.sent: list[tuple[bytes, bytes, bytes]] = []

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name.encode()]

    def carry(self, src: bytes, dst: bytes, data: bytes) -> None:
        assert len(data) <= gossip.MAX_SIZE
        self.sent.append((src, dst, data))
        if (src, dst) not in self.down:
            self.queue.append((self.now + self.delay, src, dst, data))

    def connect(self, a: str, b: str) -> None:
        self[a].gossip.connected(b.encode(), now=self.now)
        self[b].gossip.connected(a.encode(), now=self.now)

    def run(self, until: float) -> None:
        """Deliver datagrams and fire timers, in virtual time, up to `until`."""
        while True:
            due = [self.queue[0][0]] if self.queue else []
            due += [t for n in self.nodes.values() if (t := n.gossip.get_timer()) is not None]
            t = min(due, default=None)
            if t is None or t > until:
                self.now = until
                return
            self.now = max(self.now, t)
            if self.queue and self.queue[0][0] <= self.now:
                _, src, dst, data = self.queue.popleft()
                self.nodes[dst].receive(src, data, now=self.now)
            for n in self.nodes.values():
                timer = n.gossip.get_timer()
                if timer is not None and timer <= self.now:
                    n.gossip.handle_timer(now=self.now)


def line() -> Net:
    net = Net("A", "B", "C")
    net.connect("A", "B")
    net.connect("B", "C")
    return net


# -- the wire ------------------------------------------------------------------


def test_messages_round_trip_with_the_channel_header() -> None:
    item = record_of(7, seq=1_764_547_200_000_000)
    push = gossip.RecordPush.of(item)
    wire = channel.encode(push)
    assert wire[:4] == b"TW\x01\x18" and len(wire) == 4 + 32 + 8 + 64 + len(item.value)
    assert channel.decode(wire) == push and push.item() == item
    pull = gossip.RecordPull(b"e" * 8, 12)
    assert channel.encode(pull) == b"TW\x01\x19" + b"e" * 8 + (12).to_bytes(8, "big")
    done = gossip.RecordDone(b"e" * 8, 40, True)
    assert channel.encode(done) == b"TW\x01\x1a" + b"e" * 8 + (40).to_bytes(8, "big") + b"\x01"
    assert channel.decode(channel.encode(pull)) == pull
    assert channel.decode(channel.encode(done)) == done


def test_a_push_of_the_largest_record_fits_and_one_byte_more_does_not() -> None:
    big = gossip.RecordPush(bytes(32), 1, bytes(64), b"x" * 1000)
    wire = channel.encode(big)
    assert len(wire) == 1108 <= gossip.MAX_SIZE
    assert channel.decode(wire) == big
    with pytest.raises(RemoteProtocolError, match="control_size"):
        channel.decode(wire + b"x")
    with pytest.raises(ValueError, match="1001 bytes"):
        channel.encode(dataclasses.replace(big, value=b"x" * 1001))
    with pytest.raises(RemoteProtocolError, match="control_oversized"):
        channel.decode(b"TW\x01\x01" + bytes(600))  # the accounting messages keep 512


@given(kind=st.sampled_from([24, 25, 26]), body=st.binary(max_size=1300))
def test_gossip_parsers_raise_only_remote_errors(kind: int, body: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        channel.decode(b"TW\x01" + bytes([kind]) + body)


@given(data=st.binary(max_size=1300))
def test_hostile_bytes_to_a_node_are_counted_drops(data: bytes) -> None:
    net = line()
    net["B"].receive(b"A", data, now=0.0)
    net.run(until=1.0)
    assert net["C"].held() == set()


@given(
    key=st.binary(min_size=32, max_size=32),
    seq=st.integers(0, 2**64 - 1),
    sig=st.binary(min_size=64, max_size=64),
    value=st.binary(min_size=1, max_size=1000),
)
def test_a_push_of_random_parts_is_refused_and_not_passed_on(
    key: bytes, seq: int, sig: bytes, value: bytes
) -> None:
    net = line()
    net.run(until=1.0)
    net["B"].receive(b"A", channel.encode(gossip.RecordPush(key, seq, sig, value)), now=1.0)
    net.run(until=2.0)
    assert net["B"].held() == set() == net["C"].held()


# -- spreading -----------------------------------------------------------------


def test_a_record_made_at_a_reaches_c_through_b() -> None:
    net = line()
    net.run(until=1.0)
    item = record_of(1)
    net["A"].gossip.set_own(item, now=net.now)
    net.run(until=2.0)
    assert net["B"].cache.records[item.key].source == "gossip"
    assert net["C"].cache.records[item.key].item == item
    # pushed once each way: A -> B, B -> C, and nothing back
    pushes = [(s, d) for s, d, w in net.sent if w[3] == gossip.RECORD_PUSH]
    assert pushes == [(b"A", b"B"), (b"B", b"C")]


def test_pull_on_connect_brings_what_the_neighbour_already_holds() -> None:
    net = Net("A", "B", "C")
    net.connect("A", "B")
    own = record_of(1)
    net["A"].gossip.set_own(own, now=0.0)
    for n in range(10, 50):  # B holds 40 records from elsewhere (the DHT, the disk)
        net["B"].cache.offer(record_of(n), source="dht", now=WALL)
    net.run(until=1.0)
    assert net["C"].held() == set()
    net.connect("B", "C")  # C pulls: more than one batch, so two rounds
    net.run(until=2.0)
    assert net["C"].held() == net["B"].held() | {own.key}
    assert len(net["C"].held()) == 41
    assert net["C"].gossip.neighbours[b"B"].cursor == net["B"].gossip.taken_count


def test_a_lost_pull_is_asked_again_and_repulled_later() -> None:
    net = Net("A", "B")
    net["A"].cache.offer(record_of(5), source="dht", now=WALL)
    net.down.add((b"B", b"A"))
    net.connect("A", "B")
    net.run(until=core.PULL_RETRY - 0.1)
    pulls = [t for t in net.sent if t[0] == b"B" and t[2][3] == gossip.RECORD_PULL]
    assert len(pulls) == 1
    net.down.clear()
    net.run(until=core.PULL_RETRY + 1)
    assert record_of(5).key in net["B"].held()
    # anti-entropy: a record A takes silently (from the DHT) reaches B at the next pull
    net["A"].cache.offer(record_of(6), source="dht", now=WALL)
    net.run(until=core.PULL_RETRY + core.REPULL - 1)
    assert record_of(6).key not in net["B"].held()
    net.run(until=core.PULL_RETRY + core.REPULL + 2)
    assert record_of(6).key in net["B"].held()


def test_a_restarted_neighbour_answers_from_the_start() -> None:
    net = Net("A", "B")
    net["A"].cache.offer(record_of(5), source="dht", now=WALL)
    net.connect("A", "B")
    net.run(until=1.0)
    b = net["B"].gossip.neighbours[b"A"]
    assert b.epoch == b"A" * 8 and b.cursor == 1
    # A restarts: a new epoch, an empty order; B's stale cursor must not skip records
    fresh = Node("A", net)
    fresh.gossip.epoch = b"a" * 8
    net.nodes[b"A"] = fresh
    fresh.cache.offer(record_of(5, seq=2), source="disk", now=WALL)
    b.pulled_at = None
    net["B"].gossip.connected(b"A", now=net.now)
    net.run(until=2.0)
    assert net["B"].cache.records[record_of(5).key].item.seq == 2


# -- refusals ------------------------------------------------------------------


def test_a_forged_record_is_not_kept_or_forwarded() -> None:
    net = line()
    net.run(until=1.0)
    forged = dataclasses.replace(record_of(1), sig=bytes(64))
    net["B"].receive(b"A", channel.encode(gossip.RecordPush.of(forged)), now=net.now)
    net.run(until=2.0)
    assert net["B"].held() == set() == net["C"].held()
    assert net["B"].cache.counters["invalid"] == 1
    assert not any(d == b"C" and w[3] == gossip.RECORD_PUSH for _, d, w in net.sent)


def test_a_stale_or_expired_record_is_not_forwarded() -> None:
    net = line()
    net.run(until=1.0)
    net["A"].gossip.set_own(record_of(1, seq=5), now=net.now)
    net.run(until=2.0)
    before = len(net.sent)
    for item in (record_of(1, seq=4), record_of(1, seq=5), record_of(2, expiry=WALL + 1)):
        net["B"].receive(b"A", channel.encode(gossip.RecordPush.of(item)), now=net.now)
    net.run(until=3.0)
    assert net.sent[before:] == []
    assert net["C"].cache.records[record_of(1).key].item.seq == 5
    assert record_of(2).key not in net["C"].held()
    assert net["B"].cache.counters["stale"] == 2 and net["B"].cache.counters["invalid"] == 1


def test_our_own_record_coming_back_is_ignored() -> None:
    net = Net("A", "B")
    net.connect("A", "B")
    own = record_of(0)
    net["A"].gossip.own_key = own.key  # let A's signing key be record 0's
    net["A"].receive(b"B", channel.encode(gossip.RecordPush.of(own)), now=0.0)
    net.run(until=1.0)
    assert own.key not in net["A"].held()
    assert net["A"].gossip.counters["push_own"] == 1


# -- bounds and rate limits --------------------------------------------------------


def test_unsolicited_pushes_are_rate_limited_per_source() -> None:
    net = Net("A", "B", "C")
    net.run(until=1.0)
    burst = int(core.PUSH_BURST)
    for n in range(1, burst + 11):
        net["B"].receive(b"A", channel.encode(gossip.RecordPush.of(record_of(n))), now=1.0)
    assert len(net["B"].held()) == burst
    assert net["B"].gossip.counters["push_rate_limited"] == 10
    # another source has its own bucket; A's refills at PUSH_RATE
    net["B"].receive(b"C", channel.encode(gossip.RecordPush.of(record_of(100))), now=1.0)
    assert record_of(100).key in net["B"].held()
    net["B"].receive(b"A", channel.encode(gossip.RecordPush.of(record_of(101))), now=1.5)
    assert record_of(101).key not in net["B"].held()
    net["B"].receive(b"A", channel.encode(gossip.RecordPush.of(record_of(102))), now=2.1)
    assert record_of(102).key in net["B"].held()


def test_pulls_answered_are_rate_limited_per_source() -> None:
    net = Net("A", "B")
    net["A"].cache.offer(record_of(5), source="dht", now=WALL)
    for _ in range(int(core.PULL_BURST) + 5):
        net["A"].receive(b"B", channel.encode(gossip.RecordPull(gossip.NO_EPOCH, 0)), now=1.0)
    answers = [t for t in net.sent if t[2][3] == gossip.RECORD_DONE]
    assert len(answers) == core.PULL_BURST
    assert net["A"].gossip.counters["pull_rate_limited"] == 5


def test_an_answer_is_one_bounded_batch() -> None:
    net = Net("A", "B")
    for n in range(10, 10 + core.PULL_BATCH + 8):
        net["A"].cache.offer(record_of(n), source="dht", now=WALL)
    net["A"].receive(b"B", channel.encode(gossip.RecordPull(gossip.NO_EPOCH, 0)), now=1.0)
    kinds = [w[3] for _, _, w in net.sent]
    assert kinds == [gossip.RECORD_PUSH] * core.PULL_BATCH + [gossip.RECORD_DONE]
    done = channel.decode(net.sent[-1][2])
    assert isinstance(done, gossip.RecordDone) and done.more and done.next == core.PULL_BATCH


def test_state_stays_within_the_bounds() -> None:
    net = Net("A")
    a = net["A"]
    for i in range(core.MAX_NEIGHBOURS + 20):
        a.gossip.connected(i.to_bytes(4, "big"), now=0.0)
    assert len(a.gossip.neighbours) == core.MAX_NEIGHBOURS
    assert a.gossip.counters["neighbour_evicted"] == 20
    n = core.Neighbour()
    for i in range(core.MAX_KNOWN + 50):
        n.learn(i.to_bytes(32, "big"), 1)
    assert len(n.has) == core.MAX_KNOWN
    for k in range(1, 140):  # the cache's limit holds the total
        a.cache.offer(record_of(k), source="gossip", now=WALL)
    assert len(a.cache.records) == a.cache.limit == 100
    a.gossip._sync_order(now=0.0)
    assert len(a.gossip.order) == 100


def test_through_the_control_plane_a_full_size_push_arrives_and_a_session_pulls() -> None:
    """The real path: overlay IPv6/UDP packets between two control planes, the
    established hook pulling, and a record of the largest size carried whole."""
    keys = {b"A": bytes([1]) * 32, b"B": bytes([2]) * 32}
    planes: dict[bytes, ControlPlane] = {}
    cores: dict[bytes, core.Gossip] = {}
    wire: list[int] = []

    def transmit(src: bytes) -> Any:
        def go(peer_key: bytes, packet: bytes) -> None:
            wire.append(len(packet))
            dst = next(n for n, k in keys.items() if k == peer_key)
            planes[dst].receive(keys[src], packet, now=0.0)

        return go

    for name, key in keys.items():
        planes[name] = ControlPlane(public_key=key, transmit=transmit(name))
        cores[name] = core.Gossip(
            cache=RecordCache(),
            send=planes[name].send,
            own_key=bytes(32),
            epoch=name * 8,
            wall_offset=WALL,
        )
        cores[name].register(planes[name])
    big = dataclasses.replace(RECORD, version="v" * 64, region="r" * 64, endpoints=("u" * 128,) * 5)
    item = records.make(big, SigningKey(bytes([9]) * 32), seq=1)
    assert len(item.value) > 900
    cores[b"A"].cache.offer(item, source="dht", now=WALL)
    planes[b"B"].established(keys[b"A"], now=0.0)
    assert cores[b"B"].cache.records[item.key].item == item
    assert max(wire) == 48 + 4 + 32 + 8 + 64 + len(item.value) <= 1280
    assert planes[b"A"].drops == {} and planes[b"B"].drops == {}
    planes[b"B"].forget(keys[b"A"])
    assert keys[b"A"] not in cores[b"B"].neighbours


def test_every_control_message_family_has_its_own_type_bytes() -> None:
    """Gossip, the route exchange and the channel's own messages share one type byte."""
    families = [set(channel._BODIES), set(channel._FAMILIES), set(routes.KINDS)]
    assert sum(len(f) for f in families) == len(set().union(*families)), families
