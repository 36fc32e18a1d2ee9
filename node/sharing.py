"""[share] on a running node: the queues, the schedule, capacity and the quota.

A provider puts one `Share` queue (node/core/queues/share.py: per-client deficit round
robin, FQ-CoDel per flow, one pacer) in each of the data path's slots: `download` paces
what it sends to clients, `upload` what clients send through it, `per_client` caps each
client key in both. A client with `upload` set paces its own sending, so a laptop on a
slow uplink keeps its latency low. Rates count the outer headers: each packet is
charged OVERHEAD bytes on top of its inner size.

`max_clients` becomes the link's admission hook (node/core/capacity.py); `quota` a meter
the data path asks per packet, persisted in the state directory every PERSIST seconds
and at stop (a crash loses at most that much of the count), and rolled over when its
day or month ends. The schedule's rates are applied at start and at each change.
A reload hands other settings to `reconfigure`, which changes all of this in place.

While the native send and receive threads run (node/dataplane_loop.py), the queues are
theirs: `to_threads` puts the native module's `ThreadShare` (dataplane/src/queue/held.rs,
the same queue on the threads' packets and clock) in them instead, and the data path's
slots queue into the same queues what takes the Python path (node/thread_slots.py).
Turning shaping off then lifts the rates and caps and leaves the queues in place.
"""

import json
import logging
import os
import time
from collections.abc import Callable
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from tidewire.node.config.share import QuotaPeriod, ShareConfig, next_change, rates_at
from tidewire.node.core.capacity import Admission, QuotaMeter
from tidewire.node.state import atomic_write
from tidewire.protocol.keys import encode_key

if TYPE_CHECKING:
    from tidewire.node.core.queues.base import Queue
    from tidewire.node.core.queues.share import Share
    from tidewire.node.datapath import DataPath
    from tidewire.protocol.link.peer import Peer

log = logging.getLogger("tidewire.node")

OVERHEAD = 20 + 8 + 32 + 8  # outer IPv4 and UDP, WireGuard's data header and tag, padding
PERSIST = 30.0  # seconds between writes of the quota's count


def _with_packet(item: "tuple[Peer, bytes]", packet: bytes) -> "tuple[Peer, bytes]":
    return (item[0], packet)


def _same(packet: bytes) -> bytes:
    return packet


def _replace(_item: bytes, packet: bytes) -> bytes:
    return packet


def _none(_item: bytes) -> int:
    return 0  # the receive thread writes what it lets go to the TUN, whoever sent it


class Sharing:
    def __init__(
        self, dp: "DataPath", share: ShareConfig, *, provider: bool, state_dir: Path
    ) -> None:
        self.dp = dp
        self.share = share
        self.provider = provider
        self.path = state_dir / "quota.json"
        self.out_queue: Share[Any] | None = None
        self.in_queue: Share[Any] | None = None
        self.admission: Admission | None = None
        self.quota: QuotaMeter | None = None
        self.seed = int.from_bytes(os.urandom(8), "little")  # flow hashes an attacker cannot aim
        # while the native threads run: their queue class and what installs the two
        # queues (download or a client's upload, a provider's upload) in them
        self._thread_share: Any = None
        self._install: Callable[[Any, Any], None] | None = None
        self._peer_id: Callable[[Peer], int] | None = None
        self._nursery: trio.Nursery | None = None
        self._tasks: dict[str, trio.CancelScope] = {}  # "schedule", "quota": while running
        self._shape(share)
        self._limit(share)

    def shapes(self, share: ShareConfig) -> bool:
        """Does `share` fill the queue slots on this node (a provider's or a client's)?"""
        if self.provider:
            return bool(share.download or share.upload or share.per_client or share.schedule)
        return bool(share.upload or share.schedule)

    def _shape(self, share: ShareConfig) -> None:
        """Fill the queue slots for `share` (at start, or once the threads take them:
        nothing is queued yet)."""
        dp, seed = self.dp, self.seed
        if not self.shapes(share):
            return
        down, up = (share.download, share.upload) if self.provider else (share.upload, None)
        cap = share.per_client if self.provider else None
        if self._install is not None:
            self.out_queue = self._threaded(down, seed=seed, cap=cap)
            self.in_queue = (
                self._threaded(up, seed=seed ^ 0x5A5A, cap=cap) if self.provider else None
            )
            self._install(self.out_queue, self.in_queue)
            # what takes the Python path queues in the same queues (node/thread_slots.py)
            from tidewire.node.thread_slots import ThreadSlot

            peer_id = self._peer_id
            assert peer_id is not None
            out_slot: ThreadSlot[tuple[Peer, bytes]] = ThreadSlot(
                self.out_queue, dp._seal, packet_of=itemgetter(1), peer_id=lambda i: peer_id(i[0])
            )
            in_slot: Queue[bytes] = dp.in_queue
            if self.in_queue is not None:
                in_slot = ThreadSlot(self.in_queue, dp._to_tun, packet_of=_same, peer_id=_none)
            dp.set_queues(out_slot, in_slot)
        elif self.provider:
            self.out_queue = _outbound(dp, down, seed=seed, cap=cap)
            self.in_queue = _inbound(dp, up, seed=seed ^ 0x5A5A, cap=cap)
            dp.set_queues(self.out_queue, self.in_queue)
        else:
            self.out_queue = _outbound(dp, down, seed=seed, cap=None)
            dp.set_queues(self.out_queue, dp.in_queue)

    def _threaded(self, rate: float | None, *, seed: int, cap: float | None) -> Any:
        return self._thread_share(rate=rate, seed=seed, per_packet_overhead=OVERHEAD, cap=cap)

    @property
    def threaded(self) -> bool:
        """Are the queues the native threads' (`to_threads`)?"""
        return self._install is not None

    def to_threads(
        self,
        thread_share: Any,
        install: Callable[[Any, Any], None],
        peer_id: Callable[["Peer"], int],
    ) -> None:
        """The native threads run the packets from now on (before any has moved):
        `thread_share` is their queue class, `install` puts the (outbound, inbound)
        queues in them, `peer_id` is a peer's id in the threads. Queues made for the
        Python path give their slots back; the slots queue into the threads' queues."""
        self._thread_share, self._install, self._peer_id = thread_share, install, peer_id
        if self.out_queue is not None:
            from tidewire.node.core.queues.passthrough import PassThrough

            dp = self.dp
            dp.set_queues(PassThrough(dp._seal), PassThrough(dp._to_tun))
            self.out_queue = self.in_queue = None
        self._shape(self.share)

    def _limit(self, share: ShareConfig) -> None:
        """`max_clients` and `quota` for `share`, keeping the counts of those in place."""
        dp = self.dp
        if self.provider and share.max_clients is not None and self.admission is None:
            self.admission = Admission(dp.device.peers.values(), max_clients=share.max_clients)
            dp.device.admit = self.admission.admit
        elif self.admission is not None:  # kept (its refusals are counted), maybe unlimited
            self.admission.max_clients = share.max_clients
        if self.provider and share.quota is not None:
            start, end = _period(share.quota.period, time.time())
            if self.quota is None:
                used = self._load(start)
                self.quota = QuotaMeter(share.quota.bytes, start=start, end=end, used=used)
            elif (start, end) != (self.quota.start, self.quota.end):  # another period kind
                self.quota.start, self.quota.end, self.quota.used = start, end, 0
            self.quota.limit = share.quota.bytes
        else:
            self.quota = None
        dp.quota = self.quota

    def reconfigure(self, share: ShareConfig) -> None:
        """Apply other [share] settings to the running node (a reload): rates, caps, the
        schedule, max_clients and the quota change in place, and the queues keep what
        they hold; shaping turned off lets the queued packets out before the slots go
        back to the pass-through queue (on the native threads the queues stay, unpaced)."""
        now = trio.current_time()
        dp, old = self.dp, self.share
        self.share = share
        if not self.shapes(share):
            self._unshape(now=now)
        elif self.out_queue is None:
            self._shape(share)
        else:
            down, up = (share.download, share.upload) if self.provider else (share.upload, None)
            for queue, rate in ((self.out_queue, down), (self.in_queue, up)):
                if queue is None:
                    continue
                queue.set_rate(rate, now=now)
                if share.per_client != old.per_client:
                    queue.cap = share.per_client  # for clients seen from now on
                    for key in list(queue.clients):
                        queue.set_cap(key, share.per_client, now=now)
        self._limit(share)
        self.apply_schedule()  # the window of this minute wins over the base rates
        self._start_tasks()
        dp.timers.rearm()

    def _unshape(self, *, now: float) -> None:
        dp = self.dp
        for queue in (self.out_queue, self.in_queue):
            if queue is not None:
                queue.set_rate(None, now=now)
                queue.cap = None  # for clients seen from now on
                for key in list(queue.clients):
                    queue.set_cap(key, None, now=now)
                queue.release(now=now)
        if self._install is not None:
            return  # the threads' queues stay, unpaced: a packet waits in them only behind another
        if self.out_queue is not None:
            from tidewire.node.core.queues.passthrough import PassThrough

            dp.set_queues(
                PassThrough(dp._seal),
                PassThrough(dp._to_tun) if self.in_queue is not None else dp.in_queue,
            )
        self.out_queue = self.in_queue = None

    def _load(self, start: int) -> int:
        try:
            saved = json.loads(self.path.read_text())
            if int(saved["start"]) == start:
                return max(0, int(saved["used"]))
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return 0

    def save(self) -> None:
        """Write the quota's count (blocking: call it in a worker thread)."""
        q = self.quota
        if q is not None:
            data = {"start": q.start, "end": q.end, "used": q.used, "limit": q.limit}
            atomic_write(self.path, json.dumps(data).encode())

    def forget(self, key: bytes) -> None:
        for q in (self.out_queue, self.in_queue):
            if q is not None:
                q.forget(key)

    def apply_schedule(self) -> int | None:
        """Set the rates of this local minute; minutes until the next change (None: never)."""
        local = time.localtime()
        minute = local.tm_hour * 60 + local.tm_min
        if self.share.schedule:
            down, up = rates_at(self.share, minute_of_day=minute)
            now = trio.current_time()
            if self.provider:
                if self.out_queue is not None:
                    self.out_queue.set_rate(down, now=now)
                if self.in_queue is not None:
                    self.in_queue.set_rate(up, now=now)
            elif self.out_queue is not None:
                self.out_queue.set_rate(up, now=now)
            self.dp.timers.rearm()
        return next_change(self.share, minute_of_day=minute)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Hold the schedule's and the quota's tasks, which a reload may start or stop."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._start_tasks()
            task_status.started()
            await trio.sleep_forever()

    def _start_tasks(self) -> None:
        """The schedule's task (started afresh: its next change may differ) and the
        quota's, each running exactly while the settings have one."""
        if self._nursery is None:
            return
        wanted = {"schedule": self._schedule if self.share.schedule else None}
        wanted["quota"] = self._quota if self.quota is not None else None
        for name, fn in wanted.items():
            scope = self._tasks.get(name)
            if scope is not None and (fn is None or name == "schedule"):
                scope.cancel()
                del self._tasks[name]
            if fn is not None and name not in self._tasks:
                self._tasks[name] = scope = trio.CancelScope()
                self._nursery.start_soon(_within, scope, fn)

    async def _schedule(self) -> None:
        while True:
            minutes = self.apply_schedule()
            if minutes is None:
                return
            await trio.sleep(minutes * 60 - time.localtime().tm_sec + 0.5)

    async def _quota(self) -> None:
        while True:
            await trio.sleep(PERSIST)
            q, quota = self.quota, self.share.quota
            if q is None or quota is None:
                return  # a reload took it away
            wall = time.time()
            start, end = _period(quota.period, wall)
            if q.roll(wall=wall, start=start, end=end):
                log.info("quota: a new period; serving again")
            await trio.to_thread.run_sync(self.save)

    def status(self) -> dict[str, Any]:
        s = self.share
        out: dict[str, Any] = {
            "download": s.download,
            "upload": s.upload,
            "per_client": s.per_client,
            "max_clients": s.max_clients,
            "refused_capacity": self.admission.refused if self.admission else 0,
            "quota": None,
            "clients": {},
        }
        q = self.quota
        if q is not None:
            out["quota"] = {"limit": q.limit, "used": q.used, "ends": q.end, "refused": q.refused}
        for direction, queue in (("download", self.out_queue), ("upload", self.in_queue)):
            if queue is None:
                continue
            out[f"{direction}_rate"] = queue.rate
            for key, st in queue.client_stats().items():
                out["clients"].setdefault(encode_key(key), {})[direction] = st
        return out


async def _within(scope: trio.CancelScope, fn: Any) -> None:
    if scope.cancel_called:  # stopped before it ran: not even its first steps
        return
    with scope:
        await fn()


def _outbound(dp: "DataPath", rate: float | None, *, seed: int, cap: float | None) -> "Share[Any]":
    """The queue before sealing: items are (peer, packet)."""
    # loaded only by a node that shapes: every module costs a router's memory
    from tidewire.node.core.queues import share_class

    queue: Share[Any] = share_class()(
        dp._seal,
        packet_of=itemgetter(1),
        with_packet=_with_packet,
        shape="pair",
        rate=rate,
        seed=seed,
        per_packet_overhead=OVERHEAD,
        cap=cap,
    )
    return queue


def _inbound(dp: "DataPath", rate: float | None, *, seed: int, cap: float | None) -> "Share[Any]":
    """The queue before the TUN: items are packets."""
    from tidewire.node.core.queues import share_class

    queue: Share[Any] = share_class()(
        dp._to_tun,
        packet_of=_same,
        with_packet=_replace,
        shape="packet",
        rate=rate,
        seed=seed,
        per_packet_overhead=OVERHEAD,
        cap=cap,
    )
    return queue


def _period(period: QuotaPeriod, wall: float) -> tuple[int, int]:
    t = time.gmtime(wall)
    return period.bounds(t.tm_year, t.tm_mon, t.tm_mday)
