"""Two peers over a fake link in virtual time: handshake, data, rekey, expiry, retry,
give-up, keepalives, cookies and roaming, at the times wireguard-go's timers set.

Inner packets here are multiples of 16 bytes so padding adds nothing and what
arrives can be compared exactly.
"""

import itertools
import random
import struct

import pytest

from tidewire.protocol.errors import LocalProtocolError
from tidewire.protocol.link.constants import (
    COOKIE_REPLY_SIZE,
    INITIATION_SIZE,
    MESSAGE_COOKIE_REPLY,
    MESSAGE_INITIATION,
    MESSAGE_RESPONSE,
    MESSAGE_TRANSPORT,
)
from tidewire.protocol.link.cookie import CookieGenerator
from tidewire.protocol.link.device import Device
from tidewire.protocol.link.events import (
    HandshakeCompleted,
    HandshakeGaveUp,
    KeysZeroed,
    PathChanged,
)
from tidewire.protocol.link.load import LOAD_THRESHOLD
from tidewire.protocol.link.messages import parse_cookie_reply
from tidewire.protocol.link.peer import PeerConfig
from tidewire.protocol.link.profile import WIREGUARD, Mode
from tidewire.protocol.types import UDP, Path

from .helpers import SeededRandom, keypair
from .sim import Sent, Sim, pair


def pkt(n: int, size: int = 64) -> bytes:
    return n.to_bytes(4, "big") * (size // 4)


def payloads(node_received: list[tuple[float, bytes]]) -> list[bytes]:
    return [p for _, p in node_received]


def test_handshake_then_data_both_ways() -> None:
    sim, a, b = pair()
    sim.send(a, b, pkt(1))
    sim.run_until(1.0)
    assert payloads(b.received) == [pkt(1)]
    sim.send(b, a, pkt(2))
    sim.run_until(2.0)
    assert payloads(a.received) == [pkt(2)]
    assert [type(e) for _, e in a.events if isinstance(e, HandshakeCompleted)] == [
        HandshakeCompleted
    ]
    assert any(isinstance(e, HandshakeCompleted) and not e.initiator for _, e in b.events)
    assert not a.device.drops and not b.device.drops
    assert len(sim.sent(a, MESSAGE_INITIATION)) == 1
    assert len(sim.sent(b, MESSAGE_RESPONSE)) == 1
    assert all(len(s.data) == 148 for s in sim.sent(kind=MESSAGE_INITIATION))
    assert all(len(s.data) == 92 for s in sim.sent(kind=MESSAGE_RESPONSE))


def test_handshake_with_preshared_key() -> None:
    sim = Sim()
    a = sim.node("alice", ("192.0.2.1", 1))
    b = sim.node("bob", ("192.0.2.2", 2))
    sim.connect(a, b, psk=bytes(range(32)))
    sim.send(a, b, pkt(7))
    sim.run_until(1.0)
    assert payloads(b.received) == [pkt(7)]


def test_mismatched_preshared_keys_never_complete() -> None:
    sim = Sim()
    a = sim.node("alice", ("192.0.2.1", 1))
    b = sim.node("bob", ("192.0.2.2", 2))
    sim.connect(a, b, psk=bytes(range(32)))
    b.peer(a).handshake.preshared_key = bytes(32)
    sim.send(a, b, pkt(7))
    sim.run_until(12.0)
    assert not b.received
    assert a.device.drops["decrypt"] >= 2  # each response fails to authenticate at a


def _first(kind: int, src_name: str):  # type: ignore[no-untyped-def]
    """A drop rule for the first datagram of `kind` sent by the node named `src_name`."""
    state = {"done": False}

    def rule(s: Sent) -> bool:
        if not state["done"] and s.kind == kind and s.src[0] == SRC[src_name]:
            state["done"] = True
            return True
        return False

    return rule


SRC = {"alice": "192.0.2.1", "bob": "198.51.100.2"}


@pytest.mark.parametrize(
    ("kind", "sender"),
    [
        (MESSAGE_INITIATION, "alice"),
        (MESSAGE_RESPONSE, "bob"),
        (MESSAGE_TRANSPORT, "alice"),  # the initiator's first data, which confirms the session
    ],
    ids=["initiation-lost", "response-lost", "confirmation-lost"],
)
def test_handshake_survives_the_loss_of_any_one_message(kind: int, sender: str) -> None:
    sim, a, b = pair()
    sim.drop_rules.append(_first(kind, sender))
    sim.send(a, b, pkt(1))
    for i in range(2, 10):
        sim.run_until(float(i * 3))
        sim.send(a, b, pkt(i))
        sim.send(b, a, pkt(100 + i))
    sim.run_until(40.0)
    assert pkt(9) in payloads(b.received)
    assert pkt(109) in payloads(a.received)
    if kind != MESSAGE_TRANSPORT:
        inits = sim.sent(a, MESSAGE_INITIATION)
        assert len(inits) >= 2
        assert 5.0 <= inits[1].time - inits[0].time < 5.334


def test_seeded_lossy_reordering_duplicating_link_delivers_each_packet_at_most_once() -> None:
    sim, a, b = pair(seed=7, loss=0.1, duplicate=0.1, delay=0.02, jitter=0.05)
    sent = [pkt(i) for i in range(300)]
    for i, p in enumerate(sent):
        sim.send(a, b, p)
        sim.send(b, a, p)
        sim.run_until(i * 0.1)
    sim.run_until(60.0)
    got_b, got_a = payloads(b.received), payloads(a.received)
    assert len(got_b) == len(set(got_b)) and len(got_a) == len(set(got_a))
    assert len(got_b) > 200 and len(got_a) > 200
    assert b.device.drops["transport_replay"] + a.device.drops["transport_replay"] > 0
    # jitter reordered some deliveries, and the replay window let them in
    order = [int.from_bytes(p[:4], "big") for p in got_b]
    assert order != sorted(order)


def test_the_receiver_counts_what_its_peer_sent_and_lost_on_the_way() -> None:
    """Peer.rx_loss: the counters a peer skipped below the highest of each keypair, over
    three keypairs (rekeys at 120 s, the old ones dropped and their counts kept), with
    every 7th of a's transport datagrams dropped."""
    sim, a, b = pair()

    def counter(s: Sent) -> int:
        return int.from_bytes(s.data[8:16], "little")

    def dropped(s: Sent) -> bool:
        return s.src == a.addr and s.kind == MESSAGE_TRANSPORT and counter(s) % 7 == 3

    sim.drop_rules.append(dropped)
    for i in range(600):
        sim.send(a, b, pkt(i))
        sim.run_until(i * 0.5)
    sim.run_until(310.0)
    sent: dict[bytes, list[Sent]] = {}
    for s in sim.sent(a, MESSAGE_TRANSPORT):
        sent.setdefault(s.data[4:8], []).append(s)
    assert len(sent) >= 3  # the count runs across keypairs
    expected = 0
    for run in sent.values():
        top = max((counter(s) for s in run if not dropped(s)), default=-1)
        expected += sum(1 for s in run if dropped(s) and counter(s) < top)
    lost, accepted = b.peer(a).rx_loss()
    assert expected > 50 and lost == expected
    assert accepted == sum(1 for r in sent.values() for s in r if not dropped(s))


def test_late_datagrams_take_their_loss_back() -> None:
    sim, a, b = pair(seed=7, delay=0.02, jitter=0.05)
    lost_seen = 0
    for i in range(300):
        sim.send(a, b, pkt(i))
        sim.run_until(i * 0.005)
        lost_seen = max(lost_seen, b.peer(a).rx_loss()[0])
    sim.run_until(5.0)
    order = [int.from_bytes(p[:4], "big") for p in payloads(b.received)]
    assert order != sorted(order) and len(order) == 300  # reordered, nothing lost
    assert lost_seen > 0 and b.peer(a).rx_loss()[0] == 0


def test_rekey_after_120_seconds_without_losing_traffic() -> None:
    sim, a, b = pair()
    for i in range(200):
        sim.send(a, b, pkt(i))
        sim.run_until(float(i + 1))
    inits = sim.sent(a, MESSAGE_INITIATION)
    assert len(inits) == 2
    # the first packet sent on a keypair older than 120 s triggers the rekey
    first_keypair_at = next(t for t, e in a.events if isinstance(e, HandshakeCompleted))
    assert 120.0 < inits[1].time - first_keypair_at <= 121.0
    assert payloads(b.received) == [pkt(i) for i in range(200)]
    assert a.peer(b).previous is not None


def test_keys_are_refused_after_180_seconds() -> None:
    sim, a, b = pair()
    sim.send(a, b, pkt(1))
    sim.run_until(1.0)
    old = sim.sent(a, MESSAGE_TRANSPORT)[-1].data
    sim.drop_rules.append(lambda s: s.kind in (MESSAGE_INITIATION, MESSAGE_RESPONSE))
    sim.run_until(181.0)
    # a stale keypair does not send: the packet is staged and a handshake started instead
    assert a.device.encrypt(a.peer(b), pkt(2), now=sim.now) is None
    assert len(a.peer(b).staged) == 1
    # and b refuses traffic on it (the replayed packet is dropped before the window)
    b.device.receive_datagram(old, Path(UDP, a.addr), now=sim.now)
    assert b.device.drops["transport_expired_keypair"] == 1


def test_retry_every_5_seconds_with_jitter_then_give_up_after_90() -> None:
    sim, a, b = pair()
    del sim.nodes[b.addr]  # b is unreachable
    sim.send(a, b, pkt(1))
    sim.run_until(200.0)
    times = [s.time for s in sim.sent(a, MESSAGE_INITIATION)]
    # wireguard-go gives up once attempts exceed MaxTimerHandshakes (18): the first
    # initiation and 19 retries, logged there as "did not complete after 20 attempts".
    assert len(times) == 20
    gaps = [t2 - t1 for t1, t2 in itertools.pairwise(times)]
    assert all(5.0 <= g < 5.334 for g in gaps)
    assert len(set(gaps)) > 1  # jittered
    gave_up = [t for t, e in a.events if isinstance(e, HandshakeGaveUp)]
    assert len(gave_up) == 1 and 5.0 <= gave_up[0] - times[-1] < 5.334
    assert not a.peer(b).staged


def test_passive_keepalive_exactly_10_seconds_after_unanswered_data() -> None:
    sim, a, b = pair(delay=0.01)
    sim.send(a, b, pkt(1))
    sim.run_until(30.0)
    got = b.received[-1][0]
    keepalives = [s for s in sim.sent(b) if s.is_keepalive]
    assert len(keepalives) == 1
    assert keepalives[0].time == pytest.approx(got + 10.0, abs=1e-9)


def test_data_while_a_keepalive_is_pending_asks_for_another() -> None:
    sim, a, b = pair(delay=0.01)
    sim.send(a, b, pkt(1))
    sim.run_until(1.0)
    sim.send(a, b, pkt(2))
    sim.run_until(40.0)
    first = b.received[0][0]
    times = [s.time for s in sim.sent(b) if s.is_keepalive]
    assert times == [pytest.approx(first + 10.0, abs=1e-9), pytest.approx(first + 20.0, abs=1e-9)]


def test_a_reply_cancels_the_passive_keepalive() -> None:
    sim, a, b = pair(delay=0.01)
    sim.send(a, b, pkt(1))
    sim.run_until(1.0)
    sim.send(b, a, pkt(2))
    sim.run_until(30.0)
    assert not [s for s in sim.sent(b) if s.is_keepalive]


def test_new_handshake_15_seconds_after_data_gets_no_reply() -> None:
    sim, a, b = pair()
    sim.send(a, b, pkt(1))
    sim.run_until(1.0)
    sim.drop_rules.append(lambda s: s.src == b.addr)  # b goes silent
    sim.send(a, b, pkt(2))
    sim.run_until(20.0)
    # the timer runs from the first data packet that got no authenticated answer
    first_data = next(s for s in sim.sent(a, MESSAGE_TRANSPORT) if not s.is_keepalive)
    inits = sim.sent(a, MESSAGE_INITIATION)
    assert len(inits) == 2
    assert inits[1].time == pytest.approx(first_data.time + 15.0, abs=1e-9)


def test_persistent_keepalive_interval() -> None:
    sim = Sim()
    a = sim.node("alice", ("192.0.2.1", 1))
    b = sim.node("bob", ("192.0.2.2", 2))
    sim.connect(a, b, keepalive=25)
    sim.send(a, b, pkt(1))
    sim.run_until(100.0)
    times = [s.time for s in sim.sent(a) if s.is_keepalive]
    assert len(times) >= 3
    gaps = [t2 - t1 for t1, t2 in itertools.pairwise(times)]
    assert all(g == pytest.approx(25.0, abs=1e-9) for g in gaps)


def test_keys_zeroed_540_seconds_after_the_session() -> None:
    sim, a, b = pair()
    sim.send(a, b, pkt(1))
    sim.run_until(1.0)
    derived = next(t for t, e in a.events if isinstance(e, HandshakeCompleted))
    sim.run_until(600.0)
    zeroed = [t for t, e in a.events if isinstance(e, KeysZeroed)]
    assert zeroed == [pytest.approx(derived + 540.0, abs=1e-9)]
    assert a.peer(b).current is None and not a.device.index


def test_cookie_reply_under_load_then_handshake_with_mac2() -> None:
    sim, a, b = pair()
    b.under_load = True
    sim.send(a, b, pkt(1))
    sim.run_until(12.0)
    cookies = sim.sent(b, MESSAGE_COOKIE_REPLY)
    assert len(cookies) == 1 and len(cookies[0].data) == COOKIE_REPLY_SIZE
    assert a.device.counters["cookies_received"] == 1
    inits = sim.sent(a, MESSAGE_INITIATION)
    assert inits[0].data[-16:] == bytes(16)  # no cookie yet: mac2 zero
    assert inits[1].data[-16:] != bytes(16)  # the retry carries mac2
    assert payloads(b.received) == [pkt(1)]
    assert b.device.drops["under_load_cookie_sent"] == 1


def test_mac2_from_another_address_is_refused_under_load() -> None:
    sim, a, b = pair()
    b.under_load = True
    sim.send(a, b, pkt(1))
    sim.run_until(1.0)
    sim.move(a, ("192.0.2.99", 4444))  # the cookie was bound to the old address
    sim.run_until(12.0)
    assert len(sim.sent(b, MESSAGE_COOKIE_REPLY)) >= 2


def test_roaming_moves_the_endpoint_only_on_authenticated_packets() -> None:
    sim, a, b = pair()
    sim.send(a, b, pkt(1))
    sim.run_until(1.0)
    assert b.peer(a).path == Path(UDP, a.addr)
    # a forged transport packet from elsewhere, using a live receiver index
    kp = b.peer(a).current or b.peer(a).next
    assert kp is not None
    forged = (
        (4).to_bytes(4, "little")
        + kp.local_index.to_bytes(4, "little")
        + (1000).to_bytes(8, "little")
        + bytes(48)
    )
    sim.inject(("203.0.113.66", 6666), b.addr, forged)
    sim.run_until(2.0)
    assert b.peer(a).path == Path(UDP, a.addr)
    assert b.device.drops["transport_decrypt"] == 1
    # a really moves (new NAT mapping) and keeps sending
    sim.move(a, ("203.0.113.7", 40000))
    sim.send(a, b, pkt(2))
    sim.run_until(3.0)
    assert b.peer(a).path == Path(UDP, ("203.0.113.7", 40000))
    assert any(isinstance(e, PathChanged) for _, e in b.events)
    sim.send(b, a, pkt(3))
    sim.run_until(4.0)
    assert payloads(a.received)[-1] == pkt(3)


def test_native_and_wireguard_peers_never_accept_each_other() -> None:
    sim = Sim()
    a = sim.node("alice", ("192.0.2.1", 1))
    b = sim.node("bob", ("192.0.2.2", 2))
    sim.connect(a, b, mode=Mode.NATIVE)
    b.device.remove_peer(a.device.public_key)
    from tidewire.protocol.link.peer import PeerConfig

    b.device.add_peer(PeerConfig(public_key=a.device.public_key, mode=Mode.WIREGUARD))
    sim.send(a, b, pkt(1))
    sim.run_until(20.0)
    assert not b.received
    assert b.device.drops["initiation_wrong_mode"] >= 1
    assert not any(isinstance(e, HandshakeCompleted) for _, e in a.events + b.events)


def test_two_native_peers_talk() -> None:
    sim = Sim()
    a = sim.node("alice", ("192.0.2.1", 1))
    b = sim.node("bob", ("192.0.2.2", 2))
    sim.connect(a, b, mode=Mode.NATIVE)
    sim.send(a, b, pkt(1))
    sim.run_until(1.0)
    assert payloads(b.received) == [pkt(1)]


def test_replayed_initiation_is_refused_and_changes_nothing() -> None:
    sim, a, b = pair()
    sim.send(a, b, pkt(1))
    sim.run_until(1.0)
    init = sim.sent(a, MESSAGE_INITIATION)[0].data
    peer = b.peer(a)
    before = (peer.current, peer.next, peer.handshake.state, peer.handshake.last_timestamp)
    sim.inject(a.addr, b.addr, init)
    sim.run_until(2.0)
    assert b.device.drops["initiation_stale_timestamp"] == 1
    assert (peer.current, peer.next, peer.handshake.state, peer.handshake.last_timestamp) == before
    assert not sim.sent(b, MESSAGE_RESPONSE)[1:]


def test_timestamps_never_go_backwards_after_a_restart_with_a_clock_in_the_past() -> None:
    from tidewire.protocol.link import tai64n
    from tidewire.protocol.link.events import TimestampSent

    sim, a, b = pair()
    persisted = tai64n.stamp(1_900_000_000.0)  # the router's clock was ahead before reboot
    a.peer(b).last_sent_timestamp = persisted
    sim.send(a, b, pkt(1))
    sim.run_until(1.0)
    sent = [e.timestamp for _, e in a.events if isinstance(e, TimestampSent)]
    assert sent and sent[0] > persisted
    assert payloads(b.received) == [pkt(1)]


def test_a_low_order_peer_key_is_refused_at_add() -> None:
    # the all-zero point and 1 are of order 1 and 4 on Curve25519 (RFC 7748 section 6.1)
    dev = Device(private_key=keypair("low")[0], rng=SeededRandom("low"))
    for point in (bytes(32), (1).to_bytes(32, "little")):
        with pytest.raises(LocalProtocolError, match="low-order"):
            dev.add_peer(PeerConfig(public_key=point))
    assert dev.peers == {}


def _cookie_holding_attacker(b_public: bytes, reply: bytes, first: bytearray, now: float):  # type: ignore[no-untyped-def]
    """An attacker at a real address: it decrypts the cookie reply to its first initiation,
    as any client can, and from then on puts a valid mac2 on every initiation."""
    gen = CookieGenerator(WIREGUARD, b_public)
    gen.add_macs(first, now=now)  # remembers the mac1 the reply is bound to
    gen.consume_reply(parse_cookie_reply(reply), now=now)
    return gen


def test_a_valid_mac2_flood_from_one_address_is_rate_limited_and_others_get_in() -> None:
    sim, a, b = pair()
    attacker = ("203.0.113.7", 40000)
    rand = random.Random(5)

    def initiation() -> bytearray:
        return bytearray(struct.pack("<II", MESSAGE_INITIATION, rand.getrandbits(32))) + bytearray(
            rand.randbytes(INITIATION_SIZE - 8)
        )

    # the attacker asks for a cookie: b is under load, so it gets a reply and no DH
    first = initiation()
    CookieGenerator(WIREGUARD, b.device.public_key).add_macs(first, now=0.0)
    b.device.receive_datagram(bytes(first), Path(UDP, attacker), now=0.0, under_load=True)
    [(reply, _)] = b.device.datagrams_to_send()
    gen = _cookie_holding_attacker(b.device.public_key, reply, first, 0.0)
    assert b.device.counters["handshake_dh"] == 0

    # 500 valid-mac2 initiations a second for 6 s; alice (elsewhere) connects at 1 s, gets
    # a cookie (b is under load by then) and gets in with her retry 5 s later
    dh_at = {}
    for i in range(3000):
        now = 0.002 + i / 500
        msg = initiation()
        gen.add_macs(msg, now=now)
        assert msg[-16:] != bytes(16)
        sim.run_until(now)
        sim.inject(attacker, b.addr, bytes(msg))
        if i in (500, 2500):
            dh_at[i] = b.device.drops["decrypt"]  # the flood's DHs: each fails to decrypt
        if i == 500:
            sim.send(a, b, pkt(1))
    sim.run_until(6.5)
    dh = b.device.drops["decrypt"]
    # until the device is under load (128 messages in a second, load.py) nothing is limited;
    # from then on the attacker's source has a burst of 5 and 20 a second
    assert dh <= LOAD_THRESHOLD + 5 + 20 * 6
    assert dh_at[2500] - dh_at[500] <= 20 * 4  # 4 s of flood
    assert b.device.drops["initiation_rate_limited"] >= 3000 - dh
    assert payloads(b.received) == [pkt(1)]  # alice got in during the flood
    assert b.device.drops["under_load_cookie_sent"] == 2  # the attacker's first and alice's
    assert b.device.counters["handshake_dh"] == dh + 1  # the flood's and alice's


def test_cookie_replies_are_rate_limited_per_source() -> None:
    _, _, b = pair()
    gen = CookieGenerator(WIREGUARD, b.device.public_key)
    for i in range(100):  # 100 mac1-valid initiations in one second, no mac2
        msg = bytearray(struct.pack("<II", MESSAGE_INITIATION, i)) + bytearray(INITIATION_SIZE - 8)
        gen.add_macs(msg, now=0.0)
        b.device.receive_datagram(
            bytes(msg), Path(UDP, ("203.0.113.7", 1000 + i)), now=i / 100, under_load=True
        )
    sent = len(b.device.datagrams_to_send())
    assert sent == b.device.counters["cookie_replies_sent"]
    assert sent == 5 + 19  # the burst, then one every 1/20 s up to 0.99 s
    assert b.device.drops["initiation_cookie_rate_limited"] == 100 - sent
