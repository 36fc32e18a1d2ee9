"""share.Share, with its fast paths, delivers what the plain model of queue_reference.py
delivers: the same packets, in the same order, at the same times, with the same drops and
marks, on random traces and on a long standing queue where CoDel drops and marks."""

from importlib import import_module
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidewire.node.core.queues import FqCoDel, Share

from .queue_reference import RefShare, classify
from .queue_sim import Arrival, Driver, ipv4, ipv6

KEYS = [bytes([k]) * 32 for k in range(4)]

try:  # the native class (dataplane/src/queue/) is held to the same model
    Native = import_module("tidewire._dataplane").Share
    CLASSES: list[Any] = [Share, Native]
except (ImportError, AttributeError):
    CLASSES = [Share]
each_class = pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__module__.split(".")[-1])


def both(cls: Any = Share, **kwargs: Any) -> tuple[list[Any], list[Any], Share[Any], RefShare]:
    got: list[Any] = []
    want: list[Any] = []
    common: dict[str, Any] = {
        "packet_of": lambda item: item[1],
        "with_packet": lambda item, packet: (item[0], packet),
        "seed": 11,
        "per_packet_overhead": 60,
        **kwargs,
    }
    real: Share[Any] = cls(lambda item, now: got.append((now, item)), **common)
    model = RefShare(lambda item, now: want.append((now, item)), **common)
    return got, want, real, model


def play(
    arrivals: list[Arrival], until: float, cls: Any = Share, **kwargs: Any
) -> tuple[Share[Any], RefShare]:
    got, want, real, model = both(cls, **kwargs)
    Driver(real).run(arrivals, until=until)
    Driver(model).run(arrivals, until=until)  # type: ignore[arg-type]
    assert len(got) == len(want)
    assert got == want
    assert (real.drops, len(real)) == (model.drops, len(model))
    assert real.backlog == model.totals.backlog
    marks = {k: s["marks"] for k, s in real.client_stats().items()}
    assert marks == {k: c.totals.marks for k, c in model.clients.items()}
    return real, model


def packet(flow: int, size: int, ect: bool) -> bytes:
    if flow % 5 == 4:
        return ipv6(sport=flow, size=max(size, 60), tclass=2 if ect else 0)
    return ipv4(sport=flow, size=max(size, 28), tos=2 if ect else 0)


@each_class
@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3),  # client
            st.integers(0, 9),  # flow within it
            st.sampled_from([64, 200, 576, 1400, 1500]),
            st.booleans(),  # ECN-capable
            st.sampled_from([0.0, 0.0, 0.0005, 0.002, 0.02, 0.3]),  # gap before
            st.integers(1, 30),  # copies back to back
        ),
        max_size=80,
    ),
    st.sampled_from([None, 150_000.0, 1e6]),
    st.sampled_from([None, 60_000.0]),
    st.sampled_from([30_000, 1 << 22]),
)
def test_random_traces_leave_in_the_models_order(
    cls: Any,
    trace: list[tuple[int, int, int, bool, float, int]],
    rate: float | None,
    cap: float | None,
    limit: int,
) -> None:
    arrivals: list[Arrival] = []
    now = 0.0
    for client, flow, size, ect, gap, copies in trace:
        now += gap
        data = packet(client * 10 + flow, size, ect)
        for _ in range(copies):
            arrivals.append((now, (len(arrivals), data), KEYS[client], len(data)))
    play(arrivals, now + 30.0, cls, rate=rate, cap=cap, limit=limit)


@each_class
def test_a_standing_queue_drops_and_marks_as_the_model_does(cls: Any) -> None:
    """bench_queues.py's load in small: 4 clients of 4 flows offered 1.3x the rate for 3 s,
    half the flows ECN-capable, then the queue drains."""
    rate = 1.25e6
    flows = [(k, f, packet(k * 10 + f, 1500, f % 2 == 0)) for k in range(4) for f in range(4)]
    arrivals: list[Arrival] = []
    gap = 1560 / rate / 1.3
    for n in range(int(3.0 / gap)):
        k, _, data = flows[n % len(flows)]
        arrivals.append((n * gap, (n, data), KEYS[k], 1500))
    real, _ = play(arrivals, 10.0, cls, rate=rate, limit=200_000)
    stats = real.stats()
    assert real.drops > 0 and stats["marks"] > 0 and stats["overlimit_drops"] > 0


headers = st.one_of(
    st.binary(max_size=70),
    st.builds(
        lambda b0, frag, proto, rest: (
            bytes([b0]) + rest[:5] + frag.to_bytes(2, "big") + rest[5:6] + bytes([proto]) + rest[6:]
        ),
        st.sampled_from([0x45, 0x46, 0x4F, 0x44, 0x40, 0x60, 0x65]),
        st.sampled_from([0, 0x4000, 0x2000, 0x0001, 0x8000, 0xFFFF]),
        st.sampled_from([1, 6, 17, 50]),
        st.binary(min_size=6, max_size=70),
    ),
)


@settings(max_examples=500, deadline=None)
@given(headers, st.integers(0, 2**64 - 1))
def test_classify_matches_the_plain_reading_of_the_header(packet: bytes, seed: int) -> None:
    q: FqCoDel[bytes] = FqCoDel(seed=seed)
    assert q.classify(packet) == classify(packet, seed=seed)
