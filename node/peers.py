"""The node's peers: adding, removing and cutting them off, with their routes and roles.

A peer is configured in three places that must agree: the link (`Device`), the
cryptokey routes of the data path (its allowed IPs, looked up per packet) and the
kernel's routes through the TUN (`ip`, run in a worker thread so the event loop never
waits on it). An allowed IP another peer already holds is refused, unless the caller
asks to move it, as `wg set` would silently do and leave the first peer broken.
Every change is logged. `specs` holds every peer's spec, the dynamic ones too (made by
the exit choice or open admission, `PeerSpec.origin`); `configured` is the part that is
configuration, the one reload diffs and SaveConfig writes.
"""

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import trio

from tidewire.node import netconf
from tidewire.node.config import Network, PeerSpec, parse_path
from tidewire.node.core.roles import Role, role_of
from tidewire.node.errors import NodeError
from tidewire.node.firewall import is_ip
from tidewire.node.path_memory import PathMemory, network_of, path_url
from tidewire.node.requests import relayed, resolve
from tidewire.node.transports.masked import MaskedTransport
from tidewire.node.transports.stream import StreamTransport
from tidewire.protocol.keys import short
from tidewire.protocol.link.constants import KEY_SIZE
from tidewire.protocol.link.peer import Peer, PeerConfig
from tidewire.protocol.link.profile import Mode
from tidewire.protocol.types import RELAY, UDP, Path

if TYPE_CHECKING:
    from tidewire.node.accounting import Accountant
    from tidewire.node.datapath import DataPath
    from tidewire.node.nat import NatTraversal
    from tidewire.node.routing import Routing

log = logging.getLogger("tidewire.node")


class PeerError(NodeError):
    """A peer change the node refuses; the message says why."""


class Peers:
    def __init__(
        self, *, name: str, table: netconf.Routing, datapath: "DataPath", exit_enabled: bool
    ) -> None:
        self.name = name  # the interface
        self.table = table  # where the routes through the tunnel go (wg-quick's Table)
        self.datapath = datapath
        self.exit_enabled = exit_enabled
        self.accountant: Accountant | None = None
        self.routing: Routing | None = None  # the overlay route exchange, if any neighbour
        self.nat: NatTraversal | None = None  # NAT traversal (node/nat.py)
        self.allowed: dict[bytes, list[Network]] = {}
        self.specs: dict[bytes, PeerSpec] = {}
        self.paid_relays: set[bytes] = set()  # relays whose records ask for receipts
        self.priced_out: set[bytes] = set()  # paid relays over [routing] max_price
        self.masked_paths: dict[bytes, list[Path]] = {}  # listeners registered with a skin
        self.memory: PathMemory | None = None  # the winning path per network (path_memory.py)
        self.networks: dict[bytes, str | None] = {}  # the network each peer is reached on
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
        texts = [spec.endpoint, *spec.fallbacks] if spec.endpoint else []
        candidates = [relayed(await resolve(text), spec.public_key) for text in texts]
        path = candidates[0] if candidates else None
        if spec.mode is Mode.NATIVE and path and path.transport != RELAY and self.memory:
            path = await self._remembered(spec.public_key, candidates)
        for text, cand in zip(texts, candidates, strict=True):
            if cand.transport not in (UDP, RELAY):
                self._register(spec.public_key, cand, text)  # we dial it: it is the listener
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
            for cand in candidates:
                self._unregister(cand)
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
        self.masked_paths[spec.public_key] = [c for c in candidates if c.transport != UDP]
        if spec.mode is Mode.NATIVE:  # WireGuard-mode peers roam as WireGuard does
            dp.paths.add(peer, candidates, start=path)
        if self.nat is not None:
            self.nat.add_peer(spec, now=trio.current_time())
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
        await trio.to_thread.run_sync(lambda: netconf.add_routes(self.name, new, table=self.table))
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

    async def update(self, spec: PeerSpec) -> None:
        """Change a peer in place to `spec`: endpoint, keepalive, preshared key, role and
        allowed IPs. Its session (keypairs, counters) stays: the new preshared key is for
        the next handshake, and a path it roamed to stays unless the endpoint changed."""
        dp = self.datapath
        key = spec.public_key
        peer = dp.device.peers.get(key)
        if peer is None:
            raise PeerError("no peer with that public key")
        old = self.specs.get(key, spec)
        path = peer.path
        texts: list[str] = []
        candidates: list[Path] = []
        moved = spec.endpoint is not None and (
            (spec.endpoint, spec.fallbacks) != (old.endpoint, old.fallbacks)
        )
        if moved:
            texts = [spec.endpoint or "", *spec.fallbacks]
            candidates = [relayed(await resolve(text), key) for text in texts]
            for cand in candidates:
                if cand.transport != UDP and cand.transport not in dp.transports:
                    raise PeerError(f"endpoint {cand}: no {cand.transport} transport here")
            path = candidates[0]
        if sorted(map(str, self.allowed.get(key, []))) != sorted(map(str, spec.allowed_ips)):
            await self.set_allowed(key, list(spec.allowed_ips))  # the one step that can fail
        if moved:
            for stale in self.masked_paths.pop(key, []):
                self._unregister(stale)
            for text, cand in zip(texts, candidates, strict=True):
                if cand.transport not in (UDP, RELAY):
                    self._register(key, cand, text)
            self.masked_paths[key] = [c for c in candidates if c.transport != UDP]
            peer.path = path
            if spec.mode is Mode.NATIVE:  # the new candidates, raced from the first
                dp.paths.remove(key)
                dp.paths.add(peer, candidates, start=path)
        was_off = peer.persistent_keepalive == 0
        peer.handshake.preshared_key = spec.preshared_key or bytes(KEY_SIZE)
        peer.persistent_keepalive = float(spec.persistent_keepalive)
        peer.config = replace(
            peer.config,
            preshared_key=spec.preshared_key,
            persistent_keepalive=spec.persistent_keepalive,
            endpoint=path.address if path is not None and path.transport == UDP else None,
            path=path,
        )
        if self.accountant is not None and self.role(spec) != self.role(old):
            self.accountant.set_role(key, self.role(spec))
        self.specs[key] = spec
        if self.nat is not None:
            self.nat.add_peer(spec, now=trio.current_time())
        if was_off and spec.persistent_keepalive and peer.path is not None:
            dp.device.send_keepalive(peer, now=trio.current_time())
        log.info("peer %s updated in place", short(key))

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
        self.paid_relays.discard(public_key)
        for path in self.masked_paths.pop(public_key, []):
            self._unregister(path)
        dp.paths.remove(public_key)
        self.networks.pop(public_key, None)
        return self.allowed.pop(public_key, [])

    def _register(self, key: bytes, path: Path, url: str) -> None:
        """We dial the peer on a skin: it is the listener, its key keys the skin. `url` is
        the endpoint as configured (its host name is the TLS server name)."""
        transport = self.datapath.transports.get(path.transport)
        if isinstance(transport, MaskedTransport):
            transport.register(path.address, key)
        elif isinstance(transport, StreamTransport):
            host = parse_path(url)[1]
            name = None if is_ip(host) else host  # SNI: a name, never an address
            transport.register(path.address, key, server_name=name)
        else:
            raise PeerError(f"endpoint {url}: no {path.transport} transport here")

    def _unregister(self, path: Path | None) -> None:
        transport = self.datapath.transports.get(path.transport) if path else None
        if path is not None and isinstance(transport, MaskedTransport | StreamTransport):
            transport.forget(path.address)

    async def _remembered(self, key: bytes, candidates: list[Path]) -> Path:
        """Where to start: the candidate that won on this network last time, or the first.
        (Preference stays in the configured order: a better path is switched back to.)"""
        assert self.memory is not None
        host = candidates[0].address[0]
        network = await trio.to_thread.run_sync(lambda: network_of(host, mark=self.table.mark))
        self.networks[key] = network
        won = self.memory.winner(network, key)
        first = [c for c in candidates if won is not None and path_url(c) == won]
        if first and first[0] != candidates[0]:
            log.info("peer %s: starting with %s, the path that won on %s", short(key), won, network)
        return first[0] if first else candidates[0]

    def remember(self, key: bytes, path: Path) -> None:
        """The active path answered: remember it as this network's winner (the data path
        calls this; the file is written in a worker thread)."""
        memory = self.memory
        if memory is None or key not in self.networks or self._nursery is None:
            return
        if memory.remember(self.networks[key], key, path):
            self._nursery.start_soon(memory.save)

    def configured(self) -> dict[bytes, PeerSpec]:
        """The peers that are configuration (the file's, `peer add`'s, the wg API's), by
        key: what a reload compares with the file and SaveConfig writes back."""
        return {key: spec for key, spec in self.specs.items() if not spec.dynamic}

    def is_neighbour(self, key: bytes) -> bool:
        """Configured `neighbour = true`: trusted with routes, and with relay frames' sources."""
        spec = self.specs.get(key)
        return spec is not None and spec.neighbour

    def role(self, spec: PeerSpec) -> Role | None:
        return role_of(
            provider=spec.provider or spec.public_key in self.paid_relays,  # relay_pay.py
            exit_enabled=self.exit_enabled,
            wireguard=spec.mode.value == "wireguard",
            allowed_ips=spec.allowed_ips,
        )

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
