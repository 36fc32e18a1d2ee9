"""The provider's queue (node/core/queues/share.py): equal shares among clients whatever their
flow counts, a short queue for sparse flows under saturation, per-client caps, a byte limit
that holds under a burst, and random bytes that never break it."""

from collections.abc import Iterator
from importlib import import_module
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidewire.node.core.queues import FqCoDel, Share, mark_ce

from .queue_sim import Arrival, Driver, cbr, ipv4

RATE = 1_250_000.0  # bytes per second: 10 Mbit/s
OVERHEAD = 60
A = b"a" * 32
B = b"b" * 32
C = b"c" * 32

# items as the out_queue's, (peer, packet); the "peer" here is (flow name, enqueue time)
Item = tuple[tuple[str, float], bytes]


class Sink:
    def __init__(self) -> None:
        self.log: list[tuple[float, Item]] = []

    def __call__(self, item: Item, now: float) -> None:
        self.log.append((now, item))

    def bytes_of(self, name: str, start: float = 0.0, stop: float = float("inf")) -> int:
        return sum(len(i[1]) for t, i in self.log if i[0][0] == name and start <= t < stop)

    def delays(self, name: str) -> list[float]:
        return [t - i[0][1] for t, i in self.log if i[0][0] == name]


try:  # each test runs on the native class too (dataplane/src/queue/), when it is built
    Native = import_module("tidewire._dataplane").Share
    CLASSES: list[Any] = [Share, Native]
except (ImportError, AttributeError):
    CLASSES = [Share]
_cls: Any = Share


@pytest.fixture(autouse=True, params=CLASSES, ids=lambda c: c.__module__.split(".")[-1])
def share_class(request: pytest.FixtureRequest) -> Iterator[None]:
    global _cls
    _cls = request.param
    yield
    _cls = Share


def share(sink: Sink, **kwargs: Any) -> Share[Item]:
    return _cls(
        sink,
        packet_of=lambda item: item[1],
        with_packet=lambda item, packet: (item[0], packet),
        seed=3,
        **{"rate": RATE, "per_packet_overhead": OVERHEAD, **kwargs},
    )


def flow(
    name: str,
    key: bytes,
    *,
    sport: int,
    rate: float,
    size: int = 1500,
    start: float = 0.0,
    stop: float = 5.0,
) -> list[Arrival]:
    packet = ipv4(sport=sport, size=size)
    return cbr(
        start=start, stop=stop, rate=rate, size=size, key=key, item=lambda t: ((name, t), packet)
    )


def test_two_clients_with_1_and_8_flows_get_equal_shares() -> None:
    sink = Sink()
    q = share(sink)
    arrivals = flow("a", A, sport=1, rate=RATE)  # one flow offering the whole rate
    for n in range(8):  # eight flows offering as much together
        arrivals += flow("b", B, sport=100 + n, rate=RATE / 8)
    Driver(q).run(arrivals, until=5.0)
    a = sink.bytes_of("a", 1.0, 5.0)
    b = sink.bytes_of("b", 1.0, 5.0)
    assert a == pytest.approx(b, rel=0.05)
    assert a + b == pytest.approx(4.0 * RATE * 1500 / (1500 + OVERHEAD), rel=0.02)


def test_a_sparse_flow_stays_under_5_ms_while_bulk_flows_saturate() -> None:
    sink = Sink()
    q = share(sink)
    arrivals = []
    for n in range(4):  # client a: 4 bulk flows; client b: 2; together 3x the rate
        arrivals += flow("bulk", A, sport=1 + n, rate=RATE / 2)
    for n in range(2):
        arrivals += flow("bulk", B, sport=10 + n, rate=RATE / 2)
    # a sparse flow inside a saturating client, and a sparse client: 100 B each 20 ms
    arrivals += flow("sparse-a", A, sport=50, rate=5000, size=100, start=0.5)
    arrivals += flow("sparse-c", C, sport=60, rate=5000, size=100, start=0.5)
    Driver(q).run(arrivals, until=5.0)
    for name in ("sparse-a", "sparse-c"):
        delays = sink.delays(name)
        assert len(delays) == 225  # every packet went through
        assert max(delays) < 0.005, name
    bulk = sink.delays("bulk")
    assert max(bulk) > 0.005  # the bulk flows did queue (CoDel holds them near target)
    assert q.drops > 0


def test_a_capped_client_gets_its_cap_and_the_other_the_rest() -> None:
    sink = Sink()
    q = share(sink, per_packet_overhead=0)
    q.set_cap(A, RATE / 4, now=0.0)
    arrivals = flow("a", A, sport=1, rate=RATE) + flow("b", B, sport=2, rate=RATE)
    Driver(q).run(arrivals, until=5.0)
    assert sink.bytes_of("a", 1.0, 5.0) == pytest.approx(RATE / 4 * 4, rel=0.01)
    assert sink.bytes_of("b", 1.0, 5.0) == pytest.approx(RATE * 3 / 4 * 4, rel=0.01)
    stats = q.client_stats()
    assert stats[A]["cap"] == RATE / 4 and stats[B]["cap"] == -1


def test_a_cap_holds_its_rate_when_timer_wake_ups_come_late() -> None:
    """A busy host wakes the timer task milliseconds late; a capped client fed in bursts
    (a TCP window every 50 ms at twice its cap) still gets its cap, since its bucket
    catches up what a late wake-up missed (share.BURST_TIME)."""
    sink = Sink()
    q = share(sink, rate=None, per_packet_overhead=0)
    q.set_cap(A, RATE, now=0.0)
    packet = ipv4(sport=1, size=1500)
    arrivals: list[Arrival] = []
    for k in range(100):  # 5 s
        t = k * 0.05
        arrivals += [(t, (("a", t), packet), A, 1500)] * int(2 * RATE * 0.05 / 1500)
    Driver(q, late=0.004).run(arrivals, until=5.0)
    assert sink.bytes_of("a", 1.0, 5.0) == pytest.approx(RATE * 4.0, rel=0.02)


def test_the_byte_limit_holds_under_a_burst() -> None:
    sink = Sink()
    limit = 64_000
    q = share(sink, limit=limit)
    small = ipv4(sport=9, size=200)
    for _ in range(10):
        q.enqueue((("b", 0.0), small), B, 200, 0.0)
    packet = ipv4(sport=1)
    for _ in range(10_000):  # one batch from one client, far more than the limit
        q.enqueue((("a", 0.0), packet), A, 1500, 0.0)
        assert q.backlog <= limit
    q.release(now=0.0)
    stats = q.client_stats()
    assert stats[A]["overlimit_drops"] == q.drops == q.overlimit
    assert stats[B]["drops"] == 0  # the fattest client paid
    assert q.backlog == sum(s["backlog_bytes"] for s in stats.values())
    assert len(sink.log) + q.drops + len(q) == 10_010
    Driver(q).run([], until=10.0)
    assert len(q) == 0 and q.get_timer() is None
    assert len(sink.log) + q.drops == 10_010
    assert sink.bytes_of("b") == 2000


def test_idle_packets_go_at_once_and_stats_read_as_a_dict() -> None:
    sink = Sink()
    q = share(sink)
    q.enqueue((("a", 1.0), ipv4()), A, 1500, 1.0)
    assert len(sink.log) == 1 and len(q) == 0 and q.get_timer() is None
    assert q.client_stats()[A]["sent_packets"] == 1
    assert q.stats()["backlog_bytes"] == 0
    q.forget(A)
    assert q.client_stats() == {}


packets = st.one_of(
    st.binary(max_size=80),
    st.builds(
        lambda tos, proto, head, tail: ipv4(tos=tos, proto=proto, size=60)[:head] + tail,
        st.integers(0, 255),
        st.sampled_from([1, 6, 17, 50, 255]),
        st.integers(0, 60),
        st.binary(max_size=20),
    ),
    st.builds(lambda b: b"\x60" + b, st.binary(min_size=0, max_size=60)),
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            packets,
            st.sampled_from([A, B, C]),
            st.integers(1, 3000),
            st.one_of(st.just(0.0), st.floats(0, 0.05)),  # bursts, and gaps CoDel sees
            st.integers(1, 20),  # copies: a burst of one flow
        ),
        max_size=60,
    ),
    st.sampled_from([None, 50_000.0, 2e6]),
)
def test_random_bytes_never_raise_and_never_exceed_the_limit(
    arrivals: list[tuple[bytes, bytes, int, float, int]], rate: float | None
) -> None:
    sink = Sink()
    limit = 20_000
    q = share(sink, rate=rate, limit=limit, cap=30_000.0)
    now = 0.0
    total = 0
    for packet, key, size, gap, copies in arrivals:
        now += gap
        if (timer := q.get_timer()) is not None and timer <= now:
            q.handle_timer(now=max(timer, 0.0))
        for _ in range(copies):
            q.enqueue((("x", now), packet), key, size, now)
            total += 1
            assert q.backlog <= limit
        q.release(now=now)
        assert len(sink.log) + q.drops + len(q) == total
    Driver(q).run([], until=now + 100.0)
    assert len(q) == 0 and q.backlog == 0
    assert len(sink.log) + q.drops == total


@settings(max_examples=200, deadline=None)
@given(st.lists(packets, max_size=40))
def test_random_bytes_through_fq_codel_never_raise(junk: list[bytes]) -> None:
    def mark(packet: bytes) -> bytes | None:
        marked = mark_ce(packet)
        return None if marked is None else bytes(marked)

    q: FqCoDel[bytes] = FqCoDel(seed=5, mark=mark, limit=10_000)
    for n, packet in enumerate(junk):
        q.enqueue(packet, packet, 1500, n * 0.01)
        assert q.backlog <= 10_000
    now = len(junk) * 0.01
    while q.dequeue(now) is not None:
        now += 0.01
    assert q.packets == q.backlog == 0


def test_without_the_native_module_the_node_gets_the_python_class(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fresh install without Rust: share_class() falls back to share.Share; so does a
    module built before it had a Share."""
    import sys
    import types

    import tidewire
    from tidewire.node.core.queues import share_class

    monkeypatch.delattr(tidewire, "_dataplane", raising=False)
    monkeypatch.setitem(sys.modules, "tidewire._dataplane", None)  # the import fails
    assert share_class() is Share
    monkeypatch.setattr(tidewire, "_dataplane", types.ModuleType("old"), raising=False)
    assert share_class() is Share
