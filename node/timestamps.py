"""Persisting the TAI64N timestamps the link sends, without blocking the packet path.

A responder refuses an initiation whose timestamp is not newer than the last it saw,
so a restarted node must never send an older one, even on a router whose clock comes
back in the past. Writing the stamp of every initiation with two fsyncs on the packet
path stalled batches; instead this writer keeps a *reservation* per peer on disk: a
stamp `LEASE` seconds ahead of what was last sent. The link may send any stamp below
the reservation without waiting; when a sent stamp comes within `LEASE / 2` of it, a
new reservation is written in a worker thread, long before the link can reach it at
one initiation per 5 s. A restarted node starts after the reservation (the link's
`next_stamp` never goes below the stamp it is given), so it can never repeat a stamp
it sent. Only a clock that jumps forward by more than `LEASE / 2` while running can
outrun the reservation; the new one is then written at once, and a kill in that
millisecond followed by a clock that goes back again is the one case not covered.
"""

from typing import Any

import trio

from tidewire.node.state import TimestampStore
from tidewire.protocol.link.tai64n import plus_seconds

LEASE = 10  # seconds of TAI64N time reserved ahead of the last stamp sent


class TimestampWriter:
    def __init__(self, store: TimestampStore) -> None:
        self.store = store
        self.reserved: dict[bytes, bytes] = {}  # durable, by peer key
        self.pending: dict[bytes, bytes] = {}  # to be written
        self.writes = 0
        self._wake = trio.Event()

    def put(self, public_key: bytes, timestamp: bytes) -> None:
        """The link sent `timestamp` to this peer (called on the packet path: never waits)."""
        reserved = self.pending.get(public_key) or self.reserved.get(public_key)
        if reserved is not None and timestamp < plus_seconds(reserved, -(LEASE // 2)):
            return
        self.pending[public_key] = plus_seconds(timestamp, LEASE)
        self._wake.set()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            await self._write()

    async def _write(self) -> None:
        while self.pending:
            batch, self.pending = self.pending, {}
            try:
                await trio.to_thread.run_sync(self.store.put_many, batch)
            except BaseException:  # cancelled (at shutdown) or failed: keep it for drain()
                for key, value in batch.items():
                    if self.pending.get(key, b"") < value:
                        self.pending[key] = value
                raise
            self.reserved.update(batch)
            self.writes += 1

    async def drain(self) -> None:
        """Write whatever is pending (at shutdown)."""
        await self._write()
