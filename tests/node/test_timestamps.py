"""The timestamp writer (node/timestamps.py): the packet path never waits for the disk,
and a restarted node still never sends a stamp it sent before."""

from pathlib import Path

import trio
import trio.testing

from tidewire.node.state import TimestampStore
from tidewire.node.timestamps import LEASE, TimestampWriter
from tidewire.protocol.link.tai64n import next_stamp, plus_seconds, stamp

KEY = bytes(range(32))


async def test_a_restart_starts_after_everything_sent(tmp_path: Path) -> None:
    store = TimestampStore(tmp_path)
    writer = TimestampWriter(store)
    sent = []
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        last = None
        for i in range(40):  # 40 initiations 1 s apart, on a clock that starts at 1000 s
            last = next_stamp(1000.0 + i, last)
            sent.append(last)
            writer.put(KEY, last)  # never blocks
            await trio.sleep(0)
            await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    await writer.drain()
    # far fewer writes than initiations: one per half lease
    assert writer.writes <= 40 // (LEASE // 2) + 1
    # the router reboots with its clock back at 0: the first stamp is after all it sent
    restarted = TimestampStore(tmp_path)
    first = next_stamp(0.0, restarted.get(KEY))
    assert first > max(sent)


async def test_a_stamp_past_the_reservation_is_written_at_once(tmp_path: Path) -> None:
    store = TimestampStore(tmp_path)
    writer = TimestampWriter(store)
    writer.put(KEY, stamp(1000.0))
    await writer.drain()
    writer.put(KEY, stamp(5000.0))  # the clock jumped forward by an hour
    assert writer.pending == {KEY: plus_seconds(stamp(5000.0), LEASE)}
    await writer.drain()
    assert TimestampStore(tmp_path).get(KEY) == plus_seconds(stamp(5000.0), LEASE)
