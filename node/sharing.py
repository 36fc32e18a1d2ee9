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
"""

import json
import logging
import os
import time
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from tidewire.node.config.share import QuotaPeriod, ShareConfig, next_change, rates_at
from tidewire.node.core.capacity import Admission, QuotaMeter
from tidewire.node.state import atomic_write
from tidewire.protocol.keys import encode_key

if TYPE_CHECKING:
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
        seed = int.from_bytes(os.urandom(8), "little")  # flow hashes an attacker cannot aim
        shaped = share.download or share.upload or share.per_client or share.schedule
        if provider and shaped:
            self.out_queue = _outbound(dp, share.download, seed=seed, cap=share.per_client)
            self.in_queue = _inbound(dp, share.upload, seed=seed ^ 0x5A5A, cap=share.per_client)
            dp.set_queues(self.out_queue, self.in_queue)
        elif not provider and (share.upload or share.schedule):
            self.out_queue = _outbound(dp, share.upload, seed=seed, cap=None)
            dp.set_queues(self.out_queue, dp.in_queue)
        if provider and share.max_clients is not None:
            self.admission = Admission(dp.device.peers.values(), max_clients=share.max_clients)
            dp.device.admit = self.admission.admit
        if provider and share.quota is not None:
            start, end = _period(share.quota.period, time.time())
            used = self._load(start)
            self.quota = dp.quota = QuotaMeter(share.quota.bytes, start=start, end=end, used=used)

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
        async with trio.open_nursery() as nursery:
            if self.share.schedule:
                nursery.start_soon(self._schedule)
            if self.quota is not None:
                nursery.start_soon(self._quota)
            task_status.started()

    async def _schedule(self) -> None:
        while True:
            minutes = self.apply_schedule()
            if minutes is None:
                return
            await trio.sleep(minutes * 60 - time.localtime().tm_sec + 0.5)

    async def _quota(self) -> None:
        q = self.quota
        assert q is not None and self.share.quota is not None
        while True:
            await trio.sleep(PERSIST)
            wall = time.time()
            start, end = _period(self.share.quota.period, wall)
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
            out[f"{direction}_rate"] = queue.bucket.rate
            for key, st in queue.client_stats().items():
                out["clients"].setdefault(encode_key(key), {})[direction] = st
        return out


def _outbound(dp: "DataPath", rate: float | None, *, seed: int, cap: float | None) -> "Share[Any]":
    """The queue before sealing: items are (peer, packet)."""
    # loaded only by a node that shapes: every module costs a router's memory
    from tidewire.node.core.queues.share import Share as Queue

    return Queue(
        dp._seal,
        packet_of=itemgetter(1),
        with_packet=_with_packet,
        rate=rate,
        seed=seed,
        per_packet_overhead=OVERHEAD,
        cap=cap,
    )


def _inbound(dp: "DataPath", rate: float | None, *, seed: int, cap: float | None) -> "Share[Any]":
    """The queue before the TUN: items are packets."""
    from tidewire.node.core.queues.share import Share as Queue

    return Queue(
        dp._to_tun,
        packet_of=_same,
        with_packet=_replace,
        rate=rate,
        seed=seed,
        per_packet_overhead=OVERHEAD,
        cap=cap,
    )


def _period(period: QuotaPeriod, wall: float) -> tuple[int, int]:
    t = time.gmtime(wall)
    return period.bounds(t.tm_year, t.tm_mon, t.tm_mday)
