"""The node's peers: adding, removing and cutting them off, with their routes and roles.

A peer is configured in three places that must agree: the link (`Device`), the
cryptokey routes of the data path (its allowed IPs, looked up per packet) and the
kernel's routes through the TUN (`ip`, run in a worker thread so the event loop never
waits on it). An allowed IP another peer already holds is refused, unless the caller
asks to move it, as `wg set` would silently do and leave the first peer broken.
Every change is logged.
"""

import logging
from typing import TYPE_CHECKING, Any

import trio

from tidewire.node import netconf
from tidewire.node.config import Network, PeerSpec
from tidewire.node.core.roles import Role
from tidewire.node.errors import NodeError
from tidewire.node.requests import resolve
from tidewire.node.transports.masked import MaskedTransport
from tidewire.protocol.keys import short
from tidewire.protocol.link.peer import Peer, PeerConfig
from tidewire.protocol.types import MASKED, UDP, Path

if TYPE_CHECKING:
    from tidewire.node.accounting import Accountant
    from tidewire.node.datapath import DataPath
    from tidewire.node.routing import Routing

log = logging.getLogger("tidewire.node")


class PeerError(NodeError):
    """A peer change the node refuses; the message says why."""


class Peers:
    def __init__(
        self, *, name: str, table: int, datapath: "DataPath", exit_enabled: bool
    ) -> None:
        self.name = name  # the interface
        self.table = table  # the routing table of default routes through the tunnel
        self.datapath = datapath
        self.exit_enabled = exit_enabled
        self.accountant: Accountant | None = None
        self.routing: Routing | None = None  # the overlay route exchange, if any neighbour
        self.allowed: dict[bytes, list[Network]] = {}
        self.specs: dict[bytes, PeerSpec] = {}
        self.masked_paths: dict[bytes, Path] = {}  # the listeners registered with `masked`
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Hold a nursery for the route removals of peers cut off from the packet path."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def owner_of(self, net: Network) -> bytes | None:
        for key, nets in self.allowed.items():
            if net in nets:
                return key
        return None

    async def add(
        self, spec: PeerSpec, *, last_timestamp: bytes | None = None, move: bool = False
    ) -> Peer:
        dp = self.datapath
        for net in spec.allowed_ips:
            owner = self.owner_of(net)
            if owner is not None and owner != spec.public_key and not move:
                raise PeerError(
                    f"allowed IP {net} belongs to peer {short(owner)}; remove it there first"
                )
        path = await resolve(spec.endpoint) if spec.endpoint else None
        masked = dp.transports.get(MASKED)
        if path is not None and path.transport == MASKED:
            if not isinstance(masked, MaskedTransport):
                raise PeerError(f"endpoint {spec.endpoint}: this node has no masked transport")
            masked.register(path.address, spec.public_key)  # we dial it: it is the listener
        peer = dp.device.add_peer(
            PeerConfig(
                public_key=spec.public_key,
                preshared_key=spec.preshared_key,
                endpoint=path.address if path is not None and path.transport == UDP else None,
                path=path,
                persistent_keepalive=spec.persistent_keepalive,
                mode=spec.mode,
                last_sent_timestamp=last_timestamp,
            )
        )
        try:
            await trio.to_thread.run_sync(
                lambda: netconf.add_routes(self.name, spec.allowed_ips, table=self.table)
            )
        except Exception:
            dp.device.remove_peer(spec.public_key)  # a refused add changes nothing
            self._unregister(path)
            await trio.to_thread.run_sync(
                lambda: netconf.remove_routes(self.name, spec.allowed_ips, table=self.table)
            )
            raise
        for net in spec.allowed_ips:
            owner = self.owner_of(net)
            if owner is not None and owner != spec.public_key:  # moved: the old one loses it
                self.allowed[owner].remove(net)
                log.info("allowed IP %s moved from peer %s", net, short(owner))
            dp.routes.insert(net, peer)
        if self.accountant is not None:
            self.accountant.set_role(spec.public_key, self.role(spec))
        if self.routing is not None and spec.neighbour:
            self.routing.add_neighbour(spec.public_key, now=trio.current_time())
        self.allowed[spec.public_key] = list(spec.allowed_ips)
        self.specs[spec.public_key] = spec
        if path is not None and path.transport == MASKED:
            self.masked_paths[spec.public_key] = path
        log.info(
            "peer %s added (%s mode, allowed IPs %s)",
            short(spec.public_key),
            spec.mode.value,
            ", ".join(map(str, spec.allowed_ips)) or "none",
        )
        return peer

    async def set_allowed(self, public_key: bytes, nets: list[Network]) -> None:
        """Give a peer exactly `nets` in place (its session stays); a prefix another peer
        holds moves here, as `wg set` moves it."""
        dp = self.datapath
        peer = dp.device.peers.get(public_key)
        if peer is None:
            raise PeerError("no peer with that public key")
        old = self.allowed.get(public_key, [])
        new = [n for n in nets if n not in old]
        await trio.to_thread.run_sync(
            lambda: netconf.add_routes(self.name, new, table=self.table)
        )
        for net in new:
            owner = self.owner_of(net)
            if owner is not None and owner != public_key:
                self.allowed[owner].remove(net)
                log.info("allowed IP %s moved from peer %s", net, short(owner))
        dp.routes.remove(peer)
        for net in nets:
            dp.routes.insert(net, peer)
        self.allowed[public_key] = list(nets)
        if public_key in self.specs:
            self.specs[public_key].allowed_ips = list(nets)
        gone = [n for n in old if n not in nets and self.owner_of(n) is None]
        await trio.to_thread.run_sync(
            lambda: netconf.remove_routes(self.name, gone, table=self.table)
        )
        log.info(
            "peer %s allowed IPs now %s",
            short(public_key),
            ", ".join(map(str, nets)) or "none",
        )

    async def remove(self, public_key: bytes) -> None:
        if public_key not in self.datapath.device.peers:
            raise PeerError("no peer with that public key")
        nets = self._forget(public_key)
        await trio.to_thread.run_sync(
            lambda: netconf.remove_routes(self.name, nets, table=self.table)
        )
        log.info("peer %s removed", short(public_key))

    def _forget(self, public_key: bytes, *, keep_accounting: bool = False) -> list[Network]:
        dp = self.datapath
        peer = dp.device.peers[public_key]
        dp.routes.remove(peer)
        dp.device.remove_peer(public_key)
        dp.control.forget(public_key)
        dp.out_queue.forget(public_key)
        dp.in_queue.forget(public_key)
        if self.accountant is not None and not keep_accounting:
            self.accountant.set_role(public_key, None)
        if self.routing is not None:
            self.routing.remove_neighbour(public_key, now=trio.current_time())
        self.specs.pop(public_key, None)
        self._unregister(self.masked_paths.pop(public_key, None))
        return self.allowed.pop(public_key, [])

    def _unregister(self, path: Path | None) -> None:
        masked = self.datapath.transports.get(MASKED)
        if path is not None and isinstance(masked, MaskedTransport):
            masked.forget(path.address)

    def role(self, spec: PeerSpec) -> Role | None:
        if spec.provider:
            return Role.PROVIDER
        if self.exit_enabled:
            return Role.STOCK if spec.mode.value == "wireguard" else Role.CLIENT
        return None

    def disconnect(self, peer_key: bytes) -> None:
        """Stop talking to a peer (called from the packet path and timers: never waits). A
        provider we refused is removed altogether, so it cannot even handshake again; a
        client that is cut off loses its session keys."""
        dp = self.datapath
        if peer_key not in dp.device.peers:
            return
        if self.accountant is not None and self.accountant.roles.get(peer_key) is Role.PROVIDER:
            nets = self._forget(peer_key, keep_accounting=True)  # `usage` still shows why
            log.info("peer %s removed (refused as a provider)", short(peer_key))
            if self._nursery is not None and nets:
                self._nursery.start_soon(self._remove_routes, nets)
            return
        dp.device.cut_off(peer_key)

    async def _remove_routes(self, nets: list[Network]) -> None:
        try:
            await trio.to_thread.run_sync(
                lambda: netconf.remove_routes(self.name, nets, table=self.table)
            )
        except NodeError as exc:
            log.warning("%s", exc)
