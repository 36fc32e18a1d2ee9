"""The native Share (dataplane/src/queue/, `tidewire._dataplane.Share`) against share.Share,
the reference: random traces of enqueues (several clients and flows, ECN codepoints, IPv4,
IPv6, fragments, options and non-IP bytes), releases and timers at random times, rate and
cap changes and forgets must give the same deliveries (the same items, in the same order,
at the same `now`) and the same counters, timers and stats after every step; a `deliver`
or `with_packet` that raises must raise from both at the same step and leave the same
state. The flow hash is CPython's tuple hash, checked against `hash` itself. Skipped only
when the module is not built (scripts/setup builds it when a Rust toolchain is present).
"""

import struct
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tidewire.node.core.queues import FqCoDel, implementation, share_class
from tidewire.node.core.queues import share as share_py

from .queue_sim import ipv4, ipv6
from .test_queues_order import headers

dataplane = pytest.importorskip("tidewire._dataplane")
if not hasattr(dataplane, "Share"):
    pytest.skip("this build of tidewire._dataplane has no Share", allow_module_level=True)
Native = dataplane.Share
Share: Any = share_py.Share  # the reference

KEYS = [bytes([k]) * 32 for k in range(4)]


class Boom(Exception):
    pass


def test_the_chooser_picks_the_native_class_and_status_names_it() -> None:
    assert share_class() is Native
    queue = Native(print, packet_of=print, with_packet=None, rate=None, seed=1)
    assert implementation(queue) == "native"
    assert implementation(Share(print, packet_of=print, with_packet=None, rate=None, seed=1)) == (
        "python"
    )
    assert implementation(object()) is None


def test_another_hash_needs_the_python_class() -> None:
    assert share_class(hash=lambda *a: 0) is Share
    with pytest.raises(TypeError):
        Native(print, packet_of=print, with_packet=None, rate=None, seed=1, hash=lambda *a: 0)


def test_a_bad_rate_is_refused_as_python_refuses_it() -> None:
    for cls in (Share, Native):
        with pytest.raises(ValueError):
            cls(print, packet_of=print, with_packet=None, rate=0.0, seed=1)
        q = cls(print, packet_of=print, with_packet=None, rate=None, seed=1)
        with pytest.raises(ValueError):
            q.set_rate(-1.0, now=0.0)
        with pytest.raises(ValueError):
            q.set_cap(KEYS[0], float("nan"), now=0.0)


seeds = st.one_of(
    st.integers(-(2**64), 2**64),
    st.integers(-(2**200), 2**200),
    st.sampled_from([0, 1, -1, -2, 2**61 - 1, 2**61 - 2, 2**61, -(2**61) + 1, 2**127, -(2**127)]),
)


@settings(max_examples=2000, deadline=None)
@given(st.integers(0, 2**256 - 1), st.integers(0, 2**40 - 1), seeds)
def test_the_flow_hash_is_cpythons_tuple_hash(addresses: int, proto_ports: int, seed: int) -> None:
    got = dataplane.flow_hash(addresses.to_bytes(32, "big"), proto_ports, seed)
    assert got == hash((seed, addresses, proto_ports))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([0, 2**61 - 1, 2**64 - 1, 2**61, 2**62 - 2]), st.integers(0, 2**40 - 1))
def test_the_flow_hash_at_the_modulus(addresses: int, proto_ports: int) -> None:
    got = dataplane.flow_hash(addresses.to_bytes(32, "big"), proto_ports, 7)
    assert got == hash((7, addresses, proto_ports))


@settings(max_examples=1000, deadline=None)
@given(headers, st.integers(0, 2**64 - 1))
def test_classify_puts_a_packet_where_fq_codel_does(packet: bytes, seed: int) -> None:
    assert dataplane.classify(packet, seed) == FqCoDel(seed=seed).classify(packet)


def packet_for(kind: str, flow: int, size: int, ecn: int, junk: bytes) -> bytes:
    if kind == "v4":
        return ipv4(sport=flow, proto=6 if flow % 2 else 17, size=max(size, 28), tos=ecn)
    if kind == "v6":
        return ipv6(sport=flow, size=max(size, 60), tclass=ecn)
    if kind == "frag":
        return ipv4(sport=flow, size=max(size, 28), tos=ecn, frag=0x2000)
    if kind == "opts":  # a 24-byte header: the ports come after the options
        p = ipv4(sport=flow, size=max(size, 32), tos=ecn)
        return bytes([0x46]) + p[1:20] + bytes(4) + p[20:]
    return junk


enqueues = st.tuples(
    st.just("enq"),
    st.integers(0, 3),  # client
    st.integers(0, 7),  # flow within it
    st.sampled_from([40, 64, 200, 576, 1400, 1500]),
    st.sampled_from([0, 1, 2, 3]),  # ECN: Not-ECT, ECT(1), ECT(0), CE
    st.sampled_from(["v4", "v4", "v4", "v6", "frag", "opts", "junk"]),
    st.binary(max_size=60),
    st.integers(1, 40),  # copies back to back
)
# the steps on the queue's own clock (test_share_thread.py draws these too) ...
CLOCKED = (
    enqueues,
    enqueues,
    enqueues,
    st.tuples(st.just("adv"), st.sampled_from([0.0, 1e-4, 1e-3, 3e-3, 0.02, 0.2, 1.0])),
    st.tuples(st.just("release")),
    st.tuples(st.just("timer")),
    st.tuples(st.just("timer")),
)
# ... and the settings that take no time
CAP_ALL = st.tuples(st.just("capall"), st.sampled_from([None, 40_000.0, 40_000]))
FORGET = st.tuples(st.just("forget"), st.integers(0, 3))
ops = st.one_of(
    *CLOCKED,
    st.tuples(st.just("rate"), st.sampled_from([None, 30_000.0, 150_000, 1e6, 12_345.6])),
    st.tuples(st.just("cap"), st.integers(0, 3), st.sampled_from([None, 20_000, 61_000.5])),
    CAP_ALL,
    FORGET,
)


class Side:
    """One queue with its log and its failures to inject."""

    def __init__(self, cls: Any, *, fail_deliver: int | None, fail_mark: int | None, **kw: Any):
        self.log: list[tuple[float, Any]] = []
        self.delivers = self.marks = 0
        self.fail_deliver, self.fail_mark = fail_deliver, fail_mark
        self.q = cls(self.deliver, with_packet=self.with_packet if kw.pop("ecn") else None, **kw)

    def deliver(self, item: Any, now: float) -> None:
        self.delivers += 1
        if self.delivers == self.fail_deliver:
            raise Boom("deliver")
        self.log.append((now, item))

    def with_packet(self, item: Any, packet: bytes) -> Any:
        self.marks += 1
        if self.marks == self.fail_mark:
            raise Boom("with_packet")
        return (item[0], packet)

    def state(self) -> tuple[Any, ...]:
        q = self.q
        return (
            len(self.log),
            q.get_timer(),
            len(q),
            q.drops,
            q.overlimit,
            q.backlog,
            repr(q.rate),  # repr: an int stays an int (status's JSON), floats to the bit
            repr(q.cap),
            repr(q.stats()),
            repr(q.client_stats()),
            list(q.clients),
        )


def step(side: Side, op: tuple[Any, ...], n: int, now: float) -> tuple[str | None, float]:
    """Apply one op; (the exception it raised, the time after it)."""
    q = side.q
    try:
        kind = op[0]
        if kind == "enq":
            _, client, flow, size, ecn, pkind, junk, copies = op
            data = packet_for(pkind, client * 10 + flow, size, ecn, junk)
            for i in range(copies):
                q.enqueue((n * 100 + i, data), KEYS[client], len(data) or 1, now)
            q.release(now=now)
        elif kind == "adv":
            now += op[1]
        elif kind == "release":
            q.release(now=now)
        elif kind == "timer":
            timer = q.get_timer()
            if timer is not None:
                now = max(now, timer)
                q.handle_timer(now=now)
        elif kind == "rate":
            q.set_rate(op[1], now=now)
        elif kind == "cap":
            q.set_cap(KEYS[op[1]], op[2], now=now)
        elif kind == "capall":
            q.cap = op[1]
        elif kind == "forget":
            q.forget(KEYS[op[1]])
    except Boom as exc:
        return str(exc), now
    return None, now


def differ(ops_: list[tuple[Any, ...]], *, shape: str | None, **kw: Any) -> None:
    common = {"packet_of": lambda item: item[1], "per_packet_overhead": 60, **kw}
    fail_deliver, fail_mark = common.pop("fail_deliver"), common.pop("fail_mark")
    ref = Side(Share, fail_deliver=fail_deliver, fail_mark=fail_mark, **common)
    nat = Side(Native, fail_deliver=fail_deliver, fail_mark=fail_mark, shape=shape, **common)
    now_ref = now_nat = 0.0
    for n, op in enumerate([*ops_, ("adv", 30.0), ("timer",), ("timer",), ("timer",)]):
        raised_ref, now_ref = step(ref, op, n, now_ref)
        raised_nat, now_nat = step(nat, op, n, now_nat)
        assert (raised_nat, now_nat) == (raised_ref, now_ref), op
        if raised_ref:
            event(f"raised from {raised_ref}")
        assert nat.state() == ref.state(), op
    assert nat.log == ref.log
    st_ = ref.q.stats()
    event(f"delivered {min(len(ref.log), 1)} drops {min(st_['drops'], 1)}")
    event(f"marks {min(st_['marks'], 1)}")
    event(f"overlimit {min(st_['overlimit_drops'], 1)}")


@settings(max_examples=400, deadline=None)
@given(
    st.lists(ops, min_size=10, max_size=60),
    st.sampled_from([None, 30_000.0, 150_000, 1e6]),  # the node's rates are ints
    st.sampled_from([None, 60_000.0, 60_000]),
    st.sampled_from([20_000, 1 << 22]),
    st.integers(0, 2**64 - 1),
    st.sampled_from([(0.005, 0.1), (0.001, 0.02)]),
    st.booleans(),  # ECN on (with_packet given)
    st.sampled_from([None, "pair"]),
)
def test_random_traces_match_the_python_class(
    trace: list[tuple[Any, ...]],
    rate: float | None,
    cap: float | None,
    limit: int,
    seed: int,
    aqm: tuple[float, float],
    ecn: bool,
    shape: str | None,
) -> None:
    differ(
        trace,
        shape=shape,
        rate=rate,
        cap=cap,
        limit=limit,
        seed=seed,
        target=aqm[0],
        interval=aqm[1],
        ecn=ecn,
        fail_deliver=None,
        fail_mark=None,
    )


@settings(max_examples=200, deadline=None)
@given(
    st.lists(ops, min_size=10, max_size=50),
    st.sampled_from([30_000.0, 150_000.0]),
    st.integers(1, 60),
    st.sampled_from(["deliver", "with_packet"]),
)
def test_an_exception_from_a_callback_propagates_and_leaves_the_same_state(
    trace: list[tuple[Any, ...]], rate: float, at: int, which: str
) -> None:
    differ(
        trace,
        shape=None,  # with_packet is only called without a shape
        rate=rate,
        cap=None,
        limit=30_000,
        seed=5,
        ecn=True,
        target=0.001,
        interval=0.02,
        fail_deliver=at if which == "deliver" else None,
        fail_mark=at if which == "with_packet" else None,
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=60), st.sampled_from([None, "pair", "packet"]))
def test_random_bytes_never_raise_and_match(junk: list[bytes], shape: str | None) -> None:
    """Any bytes as packets, in both item shapes, queued behind a slow rate so every one is
    classified and marked or dropped by CoDel."""
    logs: dict[str, list[Any]] = {"ref": [], "nat": []}
    queues: list[Any] = []
    kinds: list[tuple[str, Any, dict[str, Any]]] = [
        ("ref", Share, {}),
        ("nat", Native, {"shape": shape}),
    ]
    for name, cls, kw in kinds:
        pair = shape != "packet"
        queues.append(
            cls(
                lambda item, now, log=logs[name]: log.append((now, item)),
                packet_of=(lambda item: item[1]) if pair else (lambda item: item),
                with_packet=(lambda item, p: (item[0], p)) if pair else (lambda item, p: p),
                rate=2_000.0,
                seed=9,
                target=0.001,
                interval=0.01,
                limit=3_000,
                **kw,
            )
        )
    for q in queues:
        now = 0.0
        for n, data in enumerate(junk):
            item = (n, data) if shape != "packet" else data
            q.enqueue(item, KEYS[n % 3], max(len(data), 1), now)
            now += 0.003
            q.handle_timer(now=now)
        while (timer := q.get_timer()) is not None:
            now = max(now, timer) + 0.01
            q.handle_timer(now=now)
    assert logs["nat"] == logs["ref"]
    assert repr(queues[1].stats()) == repr(queues[0].stats())
    assert repr(queues[1].client_stats()) == repr(queues[0].client_stats())


def test_ce_marks_are_the_python_bytes() -> None:
    """ECT(0) and ECT(1) in IPv4 (checksum updated) and IPv6 leave marked CE, byte for byte."""
    out: dict[str, list[Any]] = {"ref": [], "nat": []}
    for name, cls in (("ref", Share), ("nat", Native)):
        q: Any = cls(
            lambda item, now, log=out[name]: log.append(item),
            packet_of=lambda item: item,
            with_packet=lambda item, p: p,
            rate=20_000.0,
            seed=1,
            target=0.001,
            interval=0.01,
            **({"shape": "packet"} if cls is Native else {}),
        )
        now = 0.0
        for n in range(400):
            ecn = n % 4
            p = (
                ipv4(sport=n % 3, tos=ecn, size=500)
                if n % 2
                else ipv6(sport=n % 3, tclass=ecn, size=500)
            )
            q.enqueue(p, KEYS[0], len(p), now)
            now += 0.005
            q.handle_timer(now=now)
        assert q.stats()["marks"] > 0
    assert out["nat"] == out["ref"]
    marked = [p for p in out["nat"] if p[0] == 0x45 and p[1] & 3 == 3]
    assert marked
    for p in marked:  # the header checksum still sums to 0xFFFF
        total = sum(struct.unpack("!10H", p[:20]))
        while total >> 16:
            total = (total & 0xFFFF) + (total >> 16)
        assert total == 0xFFFF


def test_a_queue_in_a_cycle_with_its_owner_is_collected() -> None:
    """A DataPath holds its queue and the queue its `deliver`, a bound method of the
    DataPath: the native class shows the collector what it holds, items included."""
    import gc
    import weakref

    class Owner:
        def deliver(self, item: Any, now: float) -> None:
            pass

    owner = Owner()
    owner.queue = Native(  # type: ignore[attr-defined]
        owner.deliver, packet_of=lambda i: i[1], with_packet=None, rate=1_000.0, seed=1
    )
    for _ in range(5):  # the items hold the owner too
        owner.queue.enqueue((owner, ipv4()), KEYS[0], 1500, 0.0)  # type: ignore[attr-defined]
    assert len(owner.queue) > 0  # type: ignore[attr-defined]
    gone = weakref.ref(owner)
    del owner
    gc.collect()
    assert gone() is None


@pytest.mark.parametrize("cls", [Share, Native], ids=["python", "native"])
def test_a_throttled_client_whose_cap_is_lifted_is_due_at_once(cls: Any) -> None:
    """get_timer used to take the min of no caps (ValueError) when every throttled client's
    cap had been lifted, as a reload that drops per_client does."""
    got: list[float] = []
    q = cls(
        lambda item, now: got.append(now),
        packet_of=lambda item: item,
        with_packet=None,
        rate=None,
        seed=1,
        cap=10_000.0,
    )
    for _ in range(10):
        q.enqueue(ipv4(), KEYS[0], 1500, 0.0)
    q.release(now=0.0)
    held = len(q)
    assert held and q.get_timer() > 0.0  # waiting for its cap
    q.set_cap(KEYS[0], None, now=0.0)
    assert q.get_timer() == float("-inf")  # due now
    q.handle_timer(now=0.0)
    assert len(q) == 0 and len(got) == 10
