"""[share] changed on a running node (Sharing.reconfigure, a reload's share step): rates
and caps change on the queues in place, shaping turned off lets the queued packets
out, max_clients and the quota keep their counts, and the schedule's and quota's
tasks run exactly while the settings have them."""

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from tidewire.node.config.share import Quota, QuotaPeriod, ShareConfig, Window
from tidewire.node.core.queues import share_class
from tidewire.node.core.queues.passthrough import PassThrough
from tidewire.node.datapath import DataPath
from tidewire.node.dataplane import load
from tidewire.node.sharing import Sharing
from tidewire.node.thread_slots import ThreadSlot
from tidewire.protocol.link.device import Device

from ..unit.helpers import keypair

Share = share_class()  # the class the node uses: native when the module is built

KEY = bytes([5] * 32)
MBIT = 125_000  # bytes per second


@pytest.fixture
def dp() -> Iterator[DataPath]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    yield DataPath(
        device=Device(private_key=keypair("share-reload")[0], rng=bytes),
        tun_fd=ours.fileno(),
        transports={},
        policy=None,
        persist_timestamp=lambda key, stamp: None,
    )
    ours.close()
    theirs.close()


def sharing(dp: DataPath, tmp_path: Path, **share: object) -> Sharing:
    return Sharing(dp, ShareConfig(**share), provider=True, state_dir=tmp_path)  # type: ignore[arg-type]


async def test_rates_and_caps_change_on_the_same_queues(dp: DataPath, tmp_path: Path) -> None:
    s = sharing(dp, tmp_path, download=8 * MBIT, upload=2 * MBIT)
    out, inq = s.out_queue, s.in_queue
    assert isinstance(out, Share) and isinstance(inq, Share)
    inq.set_cap(KEY, None, now=trio.current_time())  # a client the queue knows
    s.reconfigure(ShareConfig(download=16 * MBIT, upload=4 * MBIT, per_client=MBIT))
    assert (s.out_queue, s.in_queue) == (out, inq) and (dp.out_queue, dp.in_queue) == (out, inq)
    assert (out.rate, inq.rate) == (16 * MBIT, 4 * MBIT)
    assert inq.client_stats()[KEY]["cap"] == MBIT  # a known client gets the new cap
    assert out.cap == inq.cap == MBIT  # and so does every one seen from now on
    s.reconfigure(ShareConfig(download=16 * MBIT))
    assert inq.client_stats()[KEY]["cap"] == -1 and inq.rate is None


async def test_shaping_turned_off_lets_the_queued_packets_out(dp: DataPath, tmp_path: Path) -> None:
    s = sharing(dp, tmp_path, upload=MBIT // 100)  # 10 kbit/s: a few packets wait
    inq = s.in_queue
    assert inq is not None
    got: list[bytes] = []
    inq.deliver = lambda item, now: got.append(item)
    now = trio.current_time()
    for i in range(20):
        inq.enqueue(bytes([0x45]) + bytes(1198) + bytes([i]), KEY, 1200, now)
    assert len(inq) > 10 and len(got) + len(inq) == 20
    s.reconfigure(ShareConfig())
    assert len(got) == 20 and len(inq) == 0  # none lost
    assert isinstance(dp.out_queue, PassThrough) and isinstance(dp.in_queue, PassThrough)
    assert s.out_queue is None and s.in_queue is None
    s.reconfigure(ShareConfig(download=MBIT))  # and on again
    queue: Any = dp.out_queue
    assert isinstance(queue, Share) and queue.rate == MBIT and queue is s.out_queue


thread_share: Any = getattr(load(), "ThreadShare", None)
threads = pytest.mark.skipif(thread_share is None, reason="the native module is not built")


@threads
async def test_on_the_native_threads_the_queues_are_theirs_and_change_in_place(
    dp: DataPath, tmp_path: Path
) -> None:
    s = sharing(dp, tmp_path, download=8 * MBIT, upload=2 * MBIT)
    installed: list[tuple[Any, Any]] = []
    s.to_threads(thread_share, lambda o, i: installed.append((o, i)), lambda peer: 7)
    out, inq = s.out_queue, s.in_queue
    assert s.threaded and installed == [(out, inq)]
    assert isinstance(out, thread_share) and isinstance(inq, thread_share)
    # the Python path's slots queue into the threads' queues (node/thread_slots.py)
    assert isinstance(dp.out_queue, ThreadSlot) and dp.out_queue.share is out
    assert isinstance(dp.in_queue, ThreadSlot) and dp.in_queue.share is inq
    assert (out.rate, inq.rate) == (8 * MBIT, 2 * MBIT) and out.seed != inq.seed
    s.reconfigure(ShareConfig(download=16 * MBIT, per_client=MBIT))
    assert (s.out_queue, s.in_queue) == (out, inq) and len(installed) == 1
    assert (out.rate, inq.rate, out.cap, inq.cap) == (16 * MBIT, None, MBIT, MBIT)
    s.reconfigure(ShareConfig())  # shaping off: unpaced, the same queues in place
    assert (s.out_queue, s.in_queue) == (out, inq) and (out.rate, out.cap) == (None, None)
    assert isinstance(dp.out_queue, ThreadSlot)
    s.reconfigure(ShareConfig(download=MBIT))
    assert out.rate == MBIT and len(installed) == 1


@threads
async def test_a_client_that_starts_shaping_on_the_threads_gets_a_thread_queue(
    dp: DataPath, tmp_path: Path
) -> None:
    c = Sharing(dp, ShareConfig(), provider=False, state_dir=tmp_path)
    installed: list[tuple[Any, Any]] = []
    c.to_threads(thread_share, lambda o, i: installed.append((o, i)), lambda peer: 7)
    assert c.out_queue is None and installed == []
    c.reconfigure(ShareConfig(upload=MBIT))
    assert installed == [(c.out_queue, None)] and isinstance(c.out_queue, thread_share)
    assert c.out_queue.rate == MBIT and isinstance(dp.out_queue, ThreadSlot)
    assert isinstance(dp.in_queue, PassThrough)  # a client does not shape what it gets


async def test_max_clients_and_the_quota_keep_their_counts(dp: DataPath, tmp_path: Path) -> None:
    s = sharing(dp, tmp_path)
    assert s.admission is None and dp.device.admit is None and dp.quota is None
    s.reconfigure(ShareConfig(max_clients=2, quota=Quota(10**9, QuotaPeriod.MONTH)))
    assert s.admission is not None and dp.device.admit == s.admission.admit
    assert s.quota is not None and dp.quota is s.quota
    s.admission.refused, s.quota.used = 3, 12345
    meter = s.quota
    s.reconfigure(ShareConfig(max_clients=5, quota=Quota(2 * 10**9, QuotaPeriod.MONTH)))
    assert (s.admission.max_clients, s.admission.refused) == (5, 3)
    assert s.quota is meter and (meter.limit, meter.used) == (2 * 10**9, 12345)
    s.reconfigure(ShareConfig(max_clients=5, quota=Quota(2 * 10**9, QuotaPeriod.DAY)))
    assert s.quota is meter and meter.used == 0 and meter.end - meter.start == 86400
    s.reconfigure(ShareConfig())
    assert s.admission.max_clients is None  # admits everyone; its refusals stay counted
    assert s.quota is None and dp.quota is None


async def test_the_schedule_and_quota_tasks_follow_the_settings(
    dp: DataPath, tmp_path: Path
) -> None:
    s = sharing(dp, tmp_path, download=MBIT)
    async with trio.open_nursery() as nursery:
        await nursery.start(s.run)
        assert s._tasks == {}
        window = Window(0, 0, download=2 * MBIT, upload=None)  # all day
        s.reconfigure(ShareConfig(download=MBIT, schedule=(window,)))
        assert set(s._tasks) == {"schedule"}
        assert s.out_queue is not None and s.out_queue.rate == 2 * MBIT  # at once
        first = s._tasks["schedule"]
        quota = Quota(1, QuotaPeriod.DAY)
        s.reconfigure(ShareConfig(download=MBIT, schedule=(window,), quota=quota))
        assert set(s._tasks) == {"schedule", "quota"}
        assert first.cancel_called and s._tasks["schedule"] is not first  # started afresh
        s.reconfigure(ShareConfig(download=MBIT))
        await trio.sleep(0)
        assert s._tasks == {} and s.out_queue.rate == MBIT
        nursery.cancel_scope.cancel()
