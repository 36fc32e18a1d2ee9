"""The data path's TUN side: reading it in batches and writing to it.

The reader waits for readiness once, then drains up to `BATCH` reads without blocking;
with TSO on, a read may be a TCP super-packet (or carry an unfinished checksum), cut
into packets natively or by node/core/gso.py, each handed to `outbound`. Writes are
held in `tun_out` while the TUN takes virtio-net headers and leave after the batch,
TCP runs coalesced into super-packets (node/core/gro.py, or natively). A full or
failing TUN is a counted drop. `DataPath` (datapath.py) is the class that uses this.
"""

import os
from collections import Counter
from collections.abc import Callable

import trio

from tidewire.node.core.gro import VNET_HDR_LEN, coalesce
from tidewire.node.core.gso import Malformed, split

BATCH = 256
TUN_WRITE_BATCH = 128  # inner packets held for coalescing: bounds the memory of one batch


class TunIO:
    """The TUN's reads and writes, mixed into `DataPath`, which sets these."""

    tun_fd: int
    tun_gro: bool
    tun_tso: bool
    tun_out: list[bytes]
    drops: Counter[str]
    counters: Counter[str]
    _tun_buffer: memoryview
    _native_split: Callable[[memoryview], list[bytes] | str] | None
    _native_write: Callable[[int, list[bytes]], tuple[int, int, int]] | None

    def outbound(self, packet: bytes, *, now: float) -> None:
        raise NotImplementedError  # DataPath's: one inner packet towards its peer

    def after_batch(self, *, data: bool = True) -> None:
        raise NotImplementedError  # DataPath's: the queues, flushes and timer after a batch

    async def tun_reader(self) -> None:
        fd, view, tso = self.tun_fd, self._tun_buffer, self.tun_tso
        skip = VNET_HDR_LEN if self.tun_gro else 0
        native_split = self._native_split
        while True:
            await trio.lowlevel.wait_readable(fd)
            now = trio.current_time()
            for _ in range(BATCH):
                try:
                    n = os.readv(fd, [view])
                except BlockingIOError:
                    break
                if not tso:
                    self.outbound(bytes(view[skip:n]), now=now)
                    continue
                if native_split is not None:
                    packets = native_split(view[:n])
                    if isinstance(packets, str):
                        self.drops[packets] += 1  # one bad frame; its neighbours go on
                        continue
                else:
                    try:
                        packets = split(view[:n])
                    except Malformed as exc:
                        self.drops[exc.reason] += 1
                        continue
                if len(packets) > 1:
                    self.counters["tun_super_packets"] += 1
                for packet in packets:
                    self.outbound(packet, now=now)
            self.after_batch()

    def _to_tun(self, packet: bytes, now: float) -> None:
        if not self.tun_gro:
            self._write_tun(packet)
            return
        self.tun_out.append(packet)
        if len(self.tun_out) >= TUN_WRITE_BATCH:
            self.flush_tun()

    def flush_tun(self) -> None:
        """Write the batch's inner packets, TCP runs coalesced into super-packets."""
        packets, self.tun_out = self.tun_out, []
        if self._native_write is not None:  # coalesced and written without the GIL
            _, full, failed = self._native_write(self.tun_fd, packets)
            if full:
                self.drops["tun_write_full"] += full
            if failed:
                self.drops["tun_write_failed"] += failed
            return
        for frame in coalesce(packets):
            self._write_tun(frame)

    def _write_tun(self, frame: bytes) -> None:
        try:
            os.write(self.tun_fd, frame)
        except BlockingIOError:
            self.drops["tun_write_full"] += 1
        except OSError:
            self.drops["tun_write_failed"] += 1
