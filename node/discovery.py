"""Discovery in the running node: the DHT socket, our own record, and the records of
others (DESIGN.md, "Discovery").

With `[discovery] dht = true` the node joins the Mainline DHT through its configured
`dht_bootstrap` nodes. A provider signs its node record (protocol/control/records.py)
when it starts, whenever the record would change, and at least hourly; it puts the
record as a BEP 44 item under its Ed25519 key and announces its DHT port on today's
rendezvous hash for its region. Every node looks up that rendezvous hash, asks each
node found there for its record (`tw_record`), and keeps what verifies in the record
cache, which is saved to the state directory and read back at the next start.

Gossip (node/core/gossip.py, docs/protocol/gossip.md) runs with or without the DHT: the core is
registered on the control plane and served by the one timer task (`attach`); what it
takes lands in the same cache, saved a moment later. A provider signs its record for
gossip even with `dht = false`, its endpoints then naming the address its default
route leaves from. What the record says is built in own_record.py; the counters,
status and `tidewire discover` read discovery through discovery_report.py.
"""

import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio
from nacl.signing import SigningKey

from tidewire.node import discovery_report
from tidewire.node.config import DiscoverySpec
from tidewire.node.config.system import resolvable
from tidewire.node.core.control_plane import ControlPlane
from tidewire.node.core.discovery import RecordCache, rendezvous
from tidewire.node.core.gossip import Gossip
from tidewire.node.metrics import Registry
from tidewire.node.own_record import route_source
from tidewire.node.state import atomic_write
from tidewire.protocol.control import records
from tidewire.protocol.control.records import NodeRecord
from tidewire.protocol.dht.items import MutableItem

if TYPE_CHECKING:
    from tidewire.node.dht import DhtService
    from tidewire.node.timers import TimerTask

log = logging.getLogger("tidewire.discovery")

REPUBLISH = 3600.0
RECORD_LIFETIME = 2 * 3600
FIND_FIRST, FIND_EVERY = 2.0, 600.0
FIND_RETRY = 15.0  # while no provider is known: a provider may be announcing right now
BOOTSTRAP_RETRY = 10.0
OPERATION_DEADLINE = 30.0
MAX_FETCHES = 32
CACHE_FILE = "records.json"
SAVE_DELAY = 1.0  # gossip's takings are saved together, this long after the first


class Discovery:
    def __init__(
        self,
        spec: DiscoverySpec,
        *,
        state_dir: Path,
        sign_key: SigningKey,
        own_record: Callable[[str | None], NodeRecord] | None,
        announce: bool = True,
        mark: int = 0,
        bindings: Callable[[], Iterable[tuple[bytes, bytes]]] = tuple,
    ) -> None:
        """`own_record(external_ip)` builds a provider's or relay's record (None:
        neither), announced on the region's rendezvous when `announce` (a provider);
        `bindings()` gives (link key, Ed25519 key) of the providers whose sessions have
        shown their Ed25519 key (their invoices): records that contradict one are
        forgeries, dropped (`RecordCache.confirm`)."""
        self.spec = spec
        self.path = state_dir / CACHE_FILE
        self.sign_key = sign_key
        self.own_record = own_record
        self.announce = announce
        self.watchers: list[Callable[[], None]] = []  # told when the cache took records
        self.bindings = bindings
        self.mark = mark  # SO_MARK of the node's outer sockets: the DHT stays outside the tunnel
        self.cache = RecordCache()
        self.svc: DhtService | None = None
        self.published: MutableItem | None = None
        self.last_find: float | None = None
        self.republish = trio.Event()
        self.gossip: Gossip | None = None
        self.dirty = trio.Event()

    def attach(self, control: ControlPlane, timers: "TimerTask") -> None:
        """Gossip with the node's native peers over the control channel."""
        g = self.gossip = Gossip(
            cache=self.cache,
            send=control.send,
            own_key=bytes(self.sign_key.verify_key),
            epoch=os.urandom(8),
            wall_offset=time.time() - trio.current_time(),
        )
        g.register(control)
        g.on_taken = self._changed
        timers.add(g)

    def _changed(self) -> None:
        """Gossip took records: save the cache soon, and tell the watchers."""
        self.dirty.set()
        self._notify()

    def _notify(self) -> None:
        for watch in self.watchers:
            watch()

    # -- the task ---------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self._load()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._save_loop)
            if self.spec.dht:
                await nursery.start(self._dht)
            elif self.own_record is not None:
                nursery.start_soon(self._own_loop)
            task_status.started()

    async def _save_loop(self) -> None:
        while True:
            await self.dirty.wait()
            await trio.sleep(SAVE_DELAY)
            self.dirty = trio.Event()
            if self.gossip is not None:
                self.gossip.on_taken = self._changed
            await trio.to_thread.run_sync(self._save)

    async def _own_loop(self) -> None:
        """With no DHT: sign our record for gossip, again whenever asked and hourly."""
        while True:
            self._sign_own(route_source())
            self.republish = trio.Event()
            with trio.move_on_after(REPUBLISH):
                await self.republish.wait()

    def _sign_own(self, seen: str | None) -> MutableItem:
        assert self.own_record is not None
        record = dataclasses.replace(
            self.own_record(seen), expiry=int(time.time()) + RECORD_LIFETIME
        )
        item = self.published = records.make(record, self.sign_key, seq=time.time_ns() // 1000)
        if self.gossip is not None:
            self.gossip.set_own(item, now=trio.current_time())
        return item

    async def _dht(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        from tidewire.node.dht import DhtService  # loaded only by nodes on the DHT

        svc = self.svc = DhtService.bind("0.0.0.0", self.spec.dht_port or 0, mark=self.mark)
        log.info("DHT on UDP port %d, region %r", svc.address[1], self.spec.region)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(svc.run)
                task_status.started()
                await self._bootstrap(svc)
                if self.own_record is not None:
                    nursery.start_soon(self._publish_loop, svc)
                await self._find_loop(svc)
        finally:
            svc.close()

    async def _bootstrap(self, svc: "DhtService") -> None:
        while True:
            addrs = await self._resolve(self.spec.dht_bootstrap)
            with trio.move_on_after(OPERATION_DEADLINE):
                await svc.bootstrap(addrs)
            if len(svc.node.table):
                log.info("DHT bootstrapped: %d nodes known", len(svc.node.table))
                return
            log.warning("DHT bootstrap found no nodes; trying again in %.0f s", BOOTSTRAP_RETRY)
            await trio.sleep(BOOTSTRAP_RETRY)

    @staticmethod
    async def _resolve(hosts: list[tuple[str, int]]) -> list[tuple[str, int]]:
        out = []
        for host, port in hosts:
            try:
                name = resolvable(host)  # not a str: no idna codec in the node
                infos = await trio.socket.getaddrinfo(name, port, trio.socket.AF_INET)
            except OSError as exc:
                log.warning("DHT bootstrap %s:%d: %s", host, port, exc)
                continue
            out += [(str(info[4][0]), port) for info in infos[:1]]
        return out

    async def _publish_loop(self, svc: "DhtService") -> None:
        assert self.own_record is not None
        while True:
            seen = max(svc.node.seen_as, key=lambda ip: svc.node.seen_as[ip], default=None)
            item = svc.node.own_record = self._sign_own(seen or route_source())
            with trio.move_on_after(OPERATION_DEADLINE):
                stored = await svc.put(item)
                log.info("node record published (seq %d) on %d DHT nodes", item.seq, stored.stored)
            if self.spec.region and self.announce:
                hash_ = rendezvous(self.spec.region, time.time())
                with trio.move_on_after(OPERATION_DEADLINE):
                    done = await svc.announce(hash_, svc.address[1])
                    log.info(
                        "announced on the %s rendezvous: %d nodes", self.spec.region, done.stored
                    )
            self.republish = trio.Event()
            with trio.move_on_after(REPUBLISH):
                await self.republish.wait()

    async def _find_loop(self, svc: "DhtService") -> None:
        await trio.sleep(FIND_FIRST)
        while True:
            if self.spec.region:
                with trio.move_on_after(OPERATION_DEADLINE):
                    await self.find(svc)
            self.confirm()
            known = self.cache.providers(region=self.spec.region, now=time.time())
            await trio.sleep(FIND_EVERY if known else FIND_RETRY)

    async def find(self, svc: "DhtService") -> int:
        """Look up today's rendezvous of our region and take the records found there."""
        hash_ = rendezvous(self.spec.region, time.time())
        done = await svc.lookup("get_peers", hash_)
        self.last_find = time.time()
        taken = answered = 0
        for peer in done.peers[:MAX_FETCHES]:
            if peer == svc.address:
                continue
            answer = await svc.fetch_record(peer)
            answered += answer.item is not None
            if answer.item is not None and self._offer(answer.item, "dht"):
                taken += 1
        log.info(
            "%s rendezvous: %d nodes answered, %d announced, %d records told, %d new",
            self.spec.region,
            len(done.nodes),
            len(done.peers),
            answered,
            taken,
        )
        if taken:
            await trio.to_thread.run_sync(self._save)
        return taken

    def _offer(self, item: MutableItem, source: str) -> bool:
        if self.published is not None and item.key == self.published.key:
            return False  # our own record
        taken = self.cache.offer(item, source=source, now=time.time()) is not None
        if taken and source == "dht" and self.gossip is not None:
            self.gossip.taken(item, now=trio.current_time())
        if taken:
            self._notify()
        return taken

    # -- the state directory ------------------------------------------------------

    def _load(self) -> None:
        try:
            entries = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("%s cannot be read (%s); starting with no records", self.path, exc)
            return
        if not isinstance(entries, list):
            return
        for e in entries:
            try:
                item = MutableItem(
                    bytes.fromhex(e["k"]),
                    int(e["seq"]),
                    bytes.fromhex(e["v"]),
                    bytes.fromhex(e["sig"]),
                    bytes.fromhex(e["salt"]),
                )
            except (KeyError, TypeError, ValueError):
                continue
            self._offer(item, "disk")

    def _save(self) -> None:
        entries = [
            {
                "k": x.item.key.hex(),
                "seq": x.item.seq,
                "v": x.item.value.hex(),
                "sig": x.item.sig.hex(),
                "salt": x.item.salt.hex(),
            }
            for x in self.cache.records.values()
        ]
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(self.path, json.dumps(entries).encode())

    # -- what the registry, status and `tidewire discover` show (discovery_report.py) --

    def register(self, reg: Registry) -> None:
        """The DHT's, gossip's and the record cache's counters, in the node's registry."""
        discovery_report.register(self, reg)

    def status(self, reg: Registry) -> dict[str, Any]:
        """The `discovery` part of `tidewire status --json`."""
        return discovery_report.status(reg)

    def confirm(self) -> None:
        for public_key, record_key in self.bindings():
            self.cache.confirm(public_key, record_key)

    def report(self, *, region: str | None = None) -> dict[str, Any]:
        """What `tidewire discover` shows: the DHT, gossip, the cache and its providers."""
        self.confirm()
        return discovery_report.report(self, region=region)
