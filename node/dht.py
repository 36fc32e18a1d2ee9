"""The Mainline DHT in the running node: one UDP socket and the sans-IO node
(protocol/dht/node.py) driven by it.

`DhtService.run` reads datagrams and serves the node's deadline in one task; the
operations (`lookup`, `announce`, `put`, `get_item`) start in the core and wait for
its event, each under the caller's deadline. Datagrams the core refuses are counted
there (`node.drops`), never logged one by one: the DHT is the open internet.
"""

import logging
import os
import socket
from typing import Any, TypeVar

import trio

from tidewire.protocol.dht.items import MutableItem
from tidewire.protocol.dht.node import DhtNode, Event, LookupDone, RecordAnswer, StoreDone

log = logging.getLogger("tidewire.dht")

E = TypeVar("E", LookupDone, StoreDone, RecordAnswer)

Address = tuple[str, int]
MAX_DATAGRAM = 1500
READ_BATCH = 64


class DhtService:
    def __init__(self, sock: socket.socket, *, node_id: bytes | None = None) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.node = DhtNode(node_id or os.urandom(20), rng=os.urandom, now=trio.current_time())
        self.waiting: dict[int, trio.Event] = {}
        self.done: dict[int, Event] = {}
        self._wake = trio.Event()
        self.wakeups = 0  # of the timer loop: a quiet node hardly wakes at all

    @classmethod
    def bind(
        cls, host: str = "0.0.0.0", port: int = 0, *, mark: int = 0, **kw: Any
    ) -> "DhtService":
        """A socket on `host:port`; `mark` (SO_MARK) keeps it out of the tunnel's routes
        and inside a kill switch's exceptions, as the node's other outer sockets."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if mark:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
        return cls(sock, **kw)

    @property
    def address(self) -> Address:
        host, port = self.sock.getsockname()[:2]
        return host, port

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read)
            nursery.start_soon(self._timers)

    async def _read(self) -> None:
        while True:
            await trio.lowlevel.wait_readable(self.sock)
            now = trio.current_time()
            for _ in range(READ_BATCH):
                try:
                    data, addr = self.sock.recvfrom(MAX_DATAGRAM)
                except BlockingIOError:
                    break
                except OSError:  # an ICMP error for an earlier send: nothing to read
                    continue
                self.node.receive(data, (addr[0], addr[1]), now=now)
            self._flush()

    async def _timers(self) -> None:
        while True:
            deadline = self.node.get_timer()
            with trio.move_on_at(deadline):
                await self._wake.wait()
            self._wake = trio.Event()
            self.wakeups += 1
            now = trio.current_time()
            if now >= self.node.get_timer():
                self.node.handle_timer(now=now)
            self._send_out()  # not _flush: that would wake this loop again at once

    def _flush(self) -> None:
        """Send what the core produced and let the timer loop see its new deadline."""
        self._send_out()
        self._wake.set()

    def _send_out(self) -> None:
        for data, addr in self.node.datagrams():
            try:
                self.sock.sendto(data, addr)
            except OSError:  # a full buffer or an unreachable address: a lost datagram
                self.node.drops["send_failed"] = self.node.drops.get("send_failed", 0) + 1
        for event in self.node.take_events():
            self.done[event.op] = event
            waiter = self.waiting.pop(event.op, None)
            if waiter is not None:
                waiter.set()

    async def _wait(self, op: int, kind: type[E]) -> E:
        """The event that ends operation `op` (started in the core just before)."""
        self._flush()
        if op not in self.done:
            event = self.waiting[op] = trio.Event()
            await event.wait()
        done = self.done.pop(op)
        assert isinstance(done, kind)
        return done

    async def bootstrap(self, addrs: list[Address]) -> LookupDone:
        return await self._wait(self.node.bootstrap(addrs, now=trio.current_time()), LookupDone)

    async def lookup(self, method: str, target: bytes) -> LookupDone:
        op = self.node.lookup(method, target, now=trio.current_time())
        return await self._wait(op, LookupDone)

    async def get_item(self, target: bytes, *, salt: bytes = b"") -> LookupDone:
        op = self.node.get_item(target, salt=salt, now=trio.current_time())
        return await self._wait(op, LookupDone)

    async def fetch_record(self, addr: Address) -> RecordAnswer:
        return await self._wait(self.node.fetch_record(addr, now=trio.current_time()), RecordAnswer)

    async def announce(self, info_hash: bytes, port: int) -> StoreDone:
        op = self.node.announce(info_hash, port, now=trio.current_time())
        return await self._wait(op, StoreDone)

    async def put(self, item: MutableItem) -> StoreDone:
        return await self._wait(self.node.put(item, now=trio.current_time()), StoreDone)

    def close(self) -> None:
        self.sock.close()
