"""The threads' queue (dataplane/src/queue/held.rs, `tidewire._dataplane.ThreadShare`)
against share.Share, the reference: random traces of enqueues (several clients and flows,
ECN codepoints, IPv4, IPv6, fragments, non-IP bytes), releases at the queue's timer and at
random times, cap defaults and forgets, on the same clock (`enqueue_at`, `release_at`),
give the same packets in the same order at the same times (CE marks included) and the
same counters, timers and stats after every step. Its settings and counters are Share's
(share_bindings.rs's helpers), so status and metrics read it alike. Skipped only when the
module is not built.
"""

from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tidewire.node.core.queues import share as share_py

from .test_share_native import CAP_ALL, CLOCKED, FORGET, KEYS, packet_for

dataplane = pytest.importorskip("tidewire._dataplane")
if not hasattr(dataplane, "ThreadShare"):
    pytest.skip("this build of tidewire._dataplane has no ThreadShare", allow_module_level=True)

# its rate and per-client caps are set on its own clock, not the trace's: not drawn here
ops = st.one_of(*CLOCKED, CAP_ALL, FORGET)


def state(q: Any) -> tuple[Any, ...]:
    return (
        q.get_timer(),
        len(q),
        q.drops,
        q.backlog,
        repr(q.rate),
        repr(q.cap),
        repr(q.stats()),
        repr(q.client_stats()),
        list(q.clients),
    )


class Reference:
    """share.Share over packets, logging what it lets go and when."""

    def __init__(self, **kw: Any) -> None:
        self.log: list[tuple[float, bytes]] = []
        self.q = share_py.Share(
            lambda p, now: self.log.append((now, p)),
            packet_of=lambda p: p,
            with_packet=lambda _p, marked: marked,
            **kw,
        )


def run(trace: list[tuple[Any, ...]], **kw: Any) -> None:
    ref = Reference(per_packet_overhead=68, **kw)
    threaded = dataplane.ThreadShare(per_packet_overhead=68, **kw)
    log: list[tuple[float, bytes]] = []
    now = 0.0
    for op in [*trace, ("adv", 30.0), ("timer",), ("timer",), ("timer",)]:
        kind = op[0]
        if kind == "enq":
            _, client, flow, size, ecn, pkind, junk, copies = op
            data = packet_for(pkind, client * 10 + flow, size, ecn, junk)
            for _ in range(copies):
                ref.q.enqueue(data, KEYS[client], len(data) or 1, now)
                out = threaded.enqueue_at(data, KEYS[client], len(data) or 1, now)
                log += [(now, p) for p in out]
        elif kind == "adv":
            now += op[1]
        elif kind in ("release", "timer"):
            if kind == "timer":
                timer = ref.q.get_timer()
                if timer is None:
                    continue
                now = max(now, timer)
            ref.q.release(now=now)
            log += [(now, p) for p in threaded.release_at(now)]
        elif kind == "capall":
            ref.q.cap = threaded.cap = op[1]
        elif kind == "forget":
            ref.q.forget(KEYS[op[1]])
            threaded.forget(KEYS[op[1]])
        assert log == ref.log, op
        assert state(threaded) == state(ref.q), op
    st_ = ref.q.stats()
    event(f"delivered {min(len(ref.log), 1)} drops {min(st_['drops'], 1)}")
    event(f"marks {min(st_['marks'], 1)}")


@settings(max_examples=300, deadline=None)
@given(
    st.lists(ops, min_size=10, max_size=60),
    st.sampled_from([None, 30_000.0, 150_000, 1e6]),
    st.sampled_from([None, 60_000.0, 60_000]),
    st.sampled_from([20_000, 1 << 22]),
    st.integers(0, 2**64 - 1),
    st.sampled_from([(0.005, 0.1), (0.001, 0.02)]),
)
def test_random_traces_match_the_python_class(
    trace: list[tuple[Any, ...]],
    rate: float | None,
    cap: float | None,
    limit: int,
    seed: int,
    aqm: tuple[float, float],
) -> None:
    run(trace, rate=rate, cap=cap, limit=limit, seed=seed, target=aqm[0], interval=aqm[1])


def test_settings_take_the_queues_own_clock_and_release_leaves_it_to_the_thread() -> None:
    q = dataplane.ThreadShare(rate=None, seed=1)
    packet = packet_for("v4", 1, 200, 0, b"")
    assert q.enqueue_at(packet, KEYS[0], 200, 1.0) == [packet]  # unpaced: at once
    q.set_rate(1_000, now=-5.0)  # Trio's now is not the queue's: it is ignored
    assert q.rate == 1_000 and isinstance(q.rate, int)
    q.set_cap(KEYS[0], 500.5, now=1e9)
    assert q.client_stats()[KEYS[0]]["cap"] == 500.5
    with pytest.raises(ValueError):
        q.set_rate(0, now=0.0)
    q.release(now=0.0)  # nothing: the thread releases on the queue's timer
    assert q.stats()["clients"] == 1
