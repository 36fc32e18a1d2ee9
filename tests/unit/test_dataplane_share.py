"""[share] in the native threads (dataplane/src/tx.rs and rx.rs with a ThreadShare put in
by `set_share`), through `Outbound.handle` and `Inbound.handle` (each read's work, the
thread's code without the I/O) and `release` (what the thread does after each wake-up):

- Unpaced, the queue changes nothing: what is sealed, or written to the TUN, is what the
  threads make without it, byte for byte, with consecutive send counters.
- Paced, a read lets out only the pacer's burst; the rest comes out of later releases,
  in order, sealed then (the send counter is taken when a packet leaves the queue, as
  the Python path's `_send_packet` seals only what the queue let go) and byte-identical
  to the Python path's sealing, each packet charged to its client's key.
- A packet whose sender went while it waited goes back to Python (`no_session`).
- `set_share(None)` takes the queue out again.
- The Python path's packets (ThreadShare's `enqueue_packet`, node/thread_slots.py) go
  at once into an idle queue and wait their turn behind others: the send thread hands
  them back by peer id when they leave, the receive thread writes them to the TUN.
- A quota's gate (node/quota_gate.py, `set_quota`) passes exactly the packets the
  Python path's QuotaMeter passes and counts the rest as `quota_exhausted`; its sync
  charges the meter and follows what moved it (the Python path, a reload).

The queue runs on its own monotonic clock, so the paced tests wait for it in real time,
each wait bounded.
"""

import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidewire.node.core.capacity import QuotaMeter
from tidewire.node.dataplane import load
from tidewire.node.quota_gate import QUOTA, QuotaGate
from tidewire.node.sharing import OVERHEAD

from .test_dataplane_diff import LOCAL, RECV, SEND, python_seal
from .test_dataplane_rx import HOST as RX_HOST
from .test_dataplane_rx import PORT as RX_PORT
from .test_dataplane_rx import inbound, ipv4
from .test_dataplane_tx import HOST, MTU, PEER, PORT, REMOTE, outbound

native = load()
pytestmark = pytest.mark.skipif(
    native is None
    or not hasattr(native, "ThreadShare")
    or not hasattr(native.Outbound, "set_share"),
    reason="tidewire._dataplane with queues in its threads is not built (scripts/setup)",
)

KEY = bytes([7] * 32)
RATE = 200_000  # bytes per second: a 1000-byte packet (and OVERHEAD) every 5.3 ms


def share(rate: float | None) -> Any:
    assert native is not None
    return native.ThreadShare(rate=rate, seed=11, per_packet_overhead=OVERHEAD)


def keyed_outbound(queue: Any) -> tuple[Any, Any]:
    tx, session = outbound()
    tx.install(session, peer=PEER, host=HOST, port=PORT, ttl=60.0, carry=MTU, key=KEY)
    tx.set_share(queue)
    return tx, session


def drain(release: Any, got: list[Any], want: int) -> None:
    """Release until `want` items came out (at most 3 s)."""
    deadline = time.monotonic() + 3.0
    while len(got) < want and time.monotonic() < deadline:
        time.sleep(0.002)
        got += release()


def read(tx: Any, packets: list[bytes]) -> list[Any]:
    """The send thread's work on each packet as a TUN read: what it sealed at once."""
    return [d for p in packets for d in tx.handle(p, False, False)]


def flow(n: int, size: int = 1000) -> list[bytes]:
    """`n` UDP packets of one flow (the same addresses and ports), numbered at the end."""
    return [ipv4("10.1.2.3", 17, bytes(8) + bytes(size - 29) + bytes([i])) for i in range(n)]


def test_an_unpaced_queue_seals_what_the_thread_seals_without_one() -> None:
    packets = flow(6, 600)
    tx, session = keyed_outbound(share(None))
    out = [d for p in packets for _, _, d, _ in tx.handle(p, False, False)]
    assert out == [python_seal(SEND, REMOTE, i, p, MTU) for i, p in enumerate(packets)]
    assert session.take_counters(1) == len(packets)


def test_a_paced_send_queue_lets_the_rest_go_on_its_timer_sealed_in_order() -> None:
    queue = share(RATE)
    tx, session = keyed_outbound(queue)
    packets = flow(12)
    out = read(tx, packets)
    first = len(out)
    assert 1 <= first < len(packets), first  # the burst, the rest waits
    assert len(queue) == len(packets) - first and queue.clients == [KEY]
    started = time.monotonic()
    drain(tx.release, out, len(packets))
    took = time.monotonic() - started
    assert [(h, port) for h, port, _, _ in out] == [(HOST, PORT)] * len(packets)
    # the counters follow the order the packets left in: one flow, first in first out
    assert [d for _, _, d, _ in out] == [
        python_seal(SEND, REMOTE, i, p, MTU) for i, p in enumerate(packets)
    ]
    # the pacer spaced them: what waited left no sooner than its bytes allow
    waited = sum(len(p) + OVERHEAD for p in packets[first:])
    assert took >= 0.8 * (waited - 2 * (len(packets[0]) + OVERHEAD)) / RATE, took
    assert len(queue) == 0 and queue.drops == 0
    assert session.take_counters(1) == len(packets)
    assert queue.client_stats()[KEY]["sent_bytes"] == sum(len(p) for p in packets)


def test_a_packet_whose_sender_went_while_it_waited_goes_back_to_python() -> None:
    queue = share(RATE)
    tx, _ = keyed_outbound(queue)
    packets = flow(8)
    out = read(tx, packets)
    waiting = len(queue)
    assert waiting > 0
    tx.remove(PEER)
    back: list[bytes] = []
    drain(lambda: tx.release() + tx.take(64), back, waiting)
    assert back == packets[len(out) :]  # as read, for the Python path to stage
    assert dict(tx.handed_back()) == {"no_session": waiting}


def test_set_share_none_takes_the_queue_out() -> None:
    queue = share(RATE)
    tx, _ = keyed_outbound(queue)
    tx.set_share(None)
    packets = flow(10)
    out = [d for p in packets for _, _, d, _ in tx.handle(p, False, False)]
    assert len(out) == len(packets) and len(queue) == 0 and queue.clients == []


def keyed_inbound(queue: Any) -> Any:
    assert native is not None
    rx = inbound()
    session = native.Session(send_key=SEND, recv_key=RECV, local_index=LOCAL, remote_index=9)
    rx.install(session, peer=1, host=RX_HOST, port=RX_PORT, ttl=60.0, key=KEY)
    rx.set_share(queue)
    return rx


def test_a_paced_receive_queue_writes_the_rest_to_the_tun_on_its_timer() -> None:
    packets = [ipv4("10.9.1.2", 17, bytes(8) + bytes(970) + bytes([i])) for i in range(12)]
    datagrams = [python_seal(RECV, LOCAL, i, p, 1420) for i, p in enumerate(packets)]
    unpaced = keyed_inbound(share(None))
    assert unpaced.handle(datagrams, RX_HOST, RX_PORT, 0) == packets  # nothing waits
    queue = share(RATE)
    rx = keyed_inbound(queue)
    tun = rx.handle(datagrams, RX_HOST, RX_PORT, 0)
    assert 1 <= len(tun) < len(packets) and queue.clients == [KEY]
    drain(rx.release, tun, len(packets))
    assert tun == packets and rx.take(64) == [] and dict(rx.drops()) == {}
    assert len(queue) == 0 and queue.drops == 0


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 20_000), st.lists(st.integers(28, 1400), min_size=1, max_size=30))
def test_a_quota_gate_passes_exactly_what_the_quota_meter_would(
    limit: int, sizes: list[int]
) -> None:
    """Sending through the thread with a quota's gate: the same packets pass as through
    QuotaMeter (while `used < limit`, the last one past it included), the rest are
    `quota_exhausted`; a sync charges what passed to the meter, in inner bytes."""
    assert native is not None
    tx, _ = keyed_outbound(None)
    meter, ref = QuotaMeter(limit, start=0, end=86400), QuotaMeter(limit, start=0, end=86400)
    gate = QuotaGate(native.Credit)
    gate.sync(meter)
    tx.set_quota(gate.gate)
    packets = [ipv4("10.1.2.3", 17, bytes(n - 20)) for n in sizes]
    passed = [bool(tx.handle(p, False, False)) for p in packets]
    assert passed == [ref.take(len(p)) for p in packets]
    refused = len(packets) - sum(passed)
    assert dict(tx.drops()) == ({QUOTA: refused} if refused else {})
    gate.sync(meter)
    assert meter.used == ref.used


def test_the_quota_gate_follows_the_python_path_a_new_limit_and_its_removal() -> None:
    assert native is not None
    tx, _ = keyed_outbound(None)
    meter = QuotaMeter(5000, start=0, end=86400)
    gate = QuotaGate(native.Credit)
    gate.sync(meter)
    tx.set_quota(gate.gate)
    assert len(tx.handle(ipv4("10.1.2.3", 17, bytes(980)), False, False)) == 1
    meter.used += 4000  # the Python path served some too
    gate.sync(meter)
    assert meter.used == 5000 and gate.gate.left == -1  # used up
    assert tx.handle(ipv4("10.1.2.3", 17, bytes(980)), False, False) == []
    meter.limit = 8000  # a reload's larger quota: open again at the next sync
    gate.sync(meter)
    assert len(tx.handle(ipv4("10.1.2.3", 17, bytes(980)), False, False)) == 1
    gate.sync(None)  # the quota is gone: what passed is charged, the gate closed
    assert meter.used == 6000 and gate.gate.left == -1 and gate.meter is None


def test_the_python_paths_packets_share_the_send_queue_and_come_back_by_peer() -> None:
    """A packet of the Python path (a stream skin's peer, a hand-back) goes at once into
    an idle queue; behind waiting packets it waits its turn, and the thread hands it back
    by peer id when it leaves (node/thread_slots.py), unsealed."""
    queue = share(RATE)
    tx, _ = keyed_outbound(queue)
    mine = ipv4("10.1.2.3", 17, bytes(8) + bytes(900))
    assert queue.enqueue_packet(mine, KEY, len(mine), 42) is True  # nothing waits: go now
    out = read(tx, flow(6))
    waiting = len(queue)
    assert waiting > 0
    assert queue.enqueue_packet(mine, KEY, len(mine), 42) is False  # behind them
    shaped: list[Any] = []
    deadline = time.monotonic() + 3.0
    while not shaped and time.monotonic() < deadline:
        time.sleep(0.002)
        out += tx.release()
        shaped += tx.take_shaped(64)
    assert shaped == [(42, mine)] and len(out) == 6  # the thread's sealed, in their turn
    assert dict(tx.handed_back()) == {"shaped": 1} and len(queue) == 0


def test_the_python_paths_packets_wait_in_the_receive_queue_for_the_tun() -> None:
    packets = [ipv4("10.9.1.2", 17, bytes(8) + bytes(970) + bytes([i])) for i in range(8)]
    datagrams = [python_seal(RECV, LOCAL, i, p, 1420) for i, p in enumerate(packets)]
    queue = share(RATE)
    rx = keyed_inbound(queue)
    tun = rx.handle(datagrams, RX_HOST, RX_PORT, 0)
    mine = ipv4("10.9.1.3", 17, bytes(8) + bytes(500))  # e.g. a TLS client's upload
    assert queue.enqueue_packet(mine, KEY, len(mine), 0) is False
    drain(rx.release, tun, len(packets) + 1)
    # the thread writes it to the TUN in its turn (a new flow's: FQ-CoDel serves it
    # before the old flow's backlog), the old flow in its order
    assert mine in tun and [p for p in tun if p != mine] == packets and len(tun) == 9
