"""The exit of a client with `[routing]` (docs/routing.md): finding, joining, switching.

node/core/exits.py decides; this task feeds it and carries its decisions out. Offers
come from the record cache (node/core/discovery.py: what gossip and the DHT found),
measurements from the node itself: the Babel metric to the provider's key when the
route exchange knows one, else the RTT and loss of the session's active path
(node/core/paths), else nothing yet. A provider counts as not answering when its
active path is down or its first handshake has not completed within HANDSHAKE_DEADLINE.

The chosen exit and the STANDBY next best are kept as native peers (endpoints from
their records, a keepalive so the session stays up and is measured); the chosen one
holds `routes` as its allowed IPs. A switch or a failover moves the routes to the new
exit in one step (`Peers.set_allowed`: the same prefixes on the same TUN, so the
kernel's routes and the kill switch never change) while the old session stays, so a
switch back costs no handshake. A peer that was already there (a configured or
bootstrap peer) is used and never removed. The peers this task adds are dynamic
(`PeerSpec.origin` "exit"): reload, SaveConfig and the wg API leave them alone. Our
tunnel addresses are the ones an open provider derives from our key
(node/core/open_admission.py), added to the TUN at start.
"""

import logging
import time
from collections.abc import Callable
from ipaddress import ip_interface
from typing import TYPE_CHECKING, Any

import trio

from tidewire.node.config import Interface, NodeConfig, PeerSpec
from tidewire.node.config.routing import RoutingSpec
from tidewire.node.core.discovery import RecordCache
from tidewire.node.core.exits import ExitChooser, Offer, Preferences, babel_metric, path_metric
from tidewire.node.core.open_admission import client_addresses
from tidewire.node.core.paths.candidate import State
from tidewire.node.core.roles import Role
from tidewire.node.errors import NodeError
from tidewire.protocol.errors import LocalProtocolError
from tidewire.protocol.keys import encode_key, short

if TYPE_CHECKING:
    from tidewire.node.daemon import Daemon
    from tidewire.node.discovery import Discovery
    from tidewire.node.peers import Peers
    from tidewire.node.routing import Routing

log = logging.getLogger("tidewire.exits")

HANDSHAKE_DEADLINE = 10.0  # s from adding a provider to a session with it
RETRY_DOWN = 30.0  # s before a provider that stopped answering is tried again
KEEPALIVE = 5  # s: the persistent keepalive of exit peers (their paths are measured)
SKINS = ("udp", "masked", "tcp", "tls")  # the order a provider's endpoints are tried in


def exit_addresses(cfg: NodeConfig, public_key: bytes) -> list[Interface]:
    """A client with [routing] holds the addresses open providers derive for it."""
    if cfg.routing is None:
        return []
    v4, v6 = client_addresses(public_key)
    ours: list[Interface] = [ip_interface(f"{v4}/32"), ip_interface(f"{v6}/128")]
    return [a for a in ours if a not in cfg.addresses]


async def start_exit_choice(
    daemon: "Daemon", nursery: trio.Nursery, discovery: "Discovery"
) -> "ExitClient | None":
    """The exit choice's task, if the config has [routing]."""
    if daemon.cfg.routing is None or daemon.peers is None:
        return None
    client = ExitClient(
        daemon.cfg.routing,
        peers=daemon.peers,
        cache=discovery.cache,
        wall=time.time,
        routing=daemon.routing,
    )
    await nursery.start(client.run)
    return client


class ExitClient:
    def __init__(
        self,
        spec: RoutingSpec,
        *,
        peers: "Peers",
        cache: RecordCache,
        wall: Callable[[], float],
        routing: "Routing | None" = None,
    ) -> None:
        self.spec = spec
        self.peers = peers
        self.cache = cache
        self.wall = wall  # Unix seconds: record expiry is wall-clock time
        self.routing = routing
        dp = peers.datapath
        self.core = ExitChooser(
            Preferences(
                exit=spec.exit, max_price=spec.max_price, region=spec.region, avoid=spec.avoid
            ),
            own_key=dp.device.public_key,
        )
        self.ours: dict[bytes, float] = {}  # peers this task added, and when
        self.down_at: dict[bytes, float] = {}
        self.routed: bytes | None = None  # the peer holding `routes` now

    # -- the task ---------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            now = trio.current_time()
            self.observe(now=now)
            self.core.handle_timer(now=now)
            try:
                await self.carry_out(now=now)
            except (NodeError, LocalProtocolError, OSError, ValueError) as exc:  # tried again
                log.warning("exit choice: %s", exc)
            due = self.core.get_timer()
            await trio.sleep_until(due if due is not None else now + 1.0)

    def observe(self, *, now: float) -> None:
        offers = [
            Offer(
                public_key=x.record.public_key,
                price=x.record.price,
                load=x.record.load,
                clients=x.record.clients,
                region=x.record.region,
                endpoints=x.record.endpoints,
            )
            for x in self.cache.providers(region=None, now=self.wall())
        ]
        self.core.set_offers(offers, now=now)
        for key in list(self.core.offers):
            metric, up = self.measure(key, now=now)
            self.core.measured(key, metric=metric, up=up, now=now)

    def measure(self, key: bytes, *, now: float) -> tuple[float | None, bool | None]:
        dp = self.peers.datapath
        peer = dp.device.peers.get(key)
        if peer is None:
            gone = self.down_at.get(key)
            if gone is not None and now - gone < RETRY_DOWN:
                return None, False
            self.down_at.pop(key, None)
            return None, None
        metric = None
        if self.routing is not None:
            dest = self.routing.engine.destinations.get(key)
            if dest is not None and dest.selected is not None:
                metric = babel_metric(dest.selected.metric)
        ps = dp.paths.sets.get(key)
        active = ps.active if ps is not None else None
        if active is not None and metric is None:
            metric = path_metric(active.rtt.srtt, active.losses.loss or 0.0)
        if active is not None and active.state is State.DOWN:
            up: bool | None = False
        elif peer.current is not None or (active is not None and active.state is State.UP):
            up = True
        elif now - self.ours.get(key, now) > HANDSHAKE_DEADLINE:
            up = False
        else:
            up = None
        if up is False:
            self.down_at.setdefault(key, now)
        else:
            self.down_at.pop(key, None)
        return metric, up

    async def carry_out(self, *, now: float) -> None:
        for ev in self.core.take_events():
            log.info(
                "exit %s -> %s (%s)",
                short(ev.old) if ev.old else "none",
                short(ev.new) if ev.new else "none",
                ev.reason,
            )
        want = self.core.standby()
        for key in want:
            if key not in self.peers.datapath.device.peers:
                await self._join(key, now=now)
        cur = self.core.current
        if cur is not None and cur != self.routed and cur in self.peers.datapath.device.peers:
            if self.routed is None:  # the first exit: the kernel's routes come with it
                await self.peers.set_allowed(cur, list(self.spec.routes))
            else:
                self._move(self.routed, cur)
            if cur not in self.ours and self.peers.accountant is not None:
                self.peers.accountant.set_role(cur, Role.PROVIDER)  # a bootstrap peer: we pay
            self.routed = cur
        for key in [k for k in self.ours if k not in want and k != self.routed]:
            del self.ours[key]
            if key in self.peers.datapath.device.peers:
                await self.peers.remove(key)

    def _move(self, old: bytes, new: bytes) -> None:
        """Move `routes` from one exit to another in the cryptokey routes alone: the
        kernel's routes (the same prefixes on the same TUN) and the kill switch stay as
        they are, and nothing waits on `ip`."""
        dp = self.peers.datapath
        nets = list(self.spec.routes)
        old_peer = dp.device.peers.get(old)
        kept = [n for n in self.peers.allowed.get(old, []) if n not in nets]
        if old_peer is not None:
            dp.routes.remove(old_peer)
            for n in kept:
                dp.routes.insert(n, old_peer)
            self.peers.allowed[old] = kept
        peer = dp.device.peers[new]
        for n in nets:
            dp.routes.insert(n, peer)
        held = self.peers.allowed.get(new, [])
        self.peers.allowed[new] = held + [n for n in nets if n not in held]
        log.info("routes %s moved to %s", ", ".join(map(str, nets)), short(new))

    async def _join(self, key: bytes, *, now: float) -> None:
        offer = self.core.offers[key]
        ends = sorted(
            (e for e in offer.endpoints if e.partition("://")[0] in SKINS),
            key=lambda e: SKINS.index(e.partition("://")[0]),
        )
        if not ends:
            self.down_at[key] = now
            return
        spec = PeerSpec(
            public_key=key,
            endpoint=ends[0],
            fallbacks=ends[1:],
            persistent_keepalive=KEEPALIVE,
            provider=True,
            origin="exit",  # not configuration: reload and SaveConfig skip it
        )
        self.down_at[key] = now  # until it answers: a refused add waits RETRY_DOWN
        peer = await self.peers.add(spec)
        self.ours[key] = now
        if peer.path is not None:
            self.peers.datapath.device.send_keepalive(peer, now=now)
            self.peers.datapath.flush()
        log.info("provider %s joined (%s)", short(key), ends[0])

    # -- what `tidewire exits` and `tidewire routes` show --------------------------

    def report(self, *, now: float) -> dict[str, Any]:
        rows = self.core.report(now=now)
        for r in rows:
            r["public_key"] = encode_key(r["public_key"])  # type: ignore[arg-type]
            r["connected"] = r["public_key"] in self._connected()
        cur = self.core.current
        chosen = next((r for r in rows if r["current"]), None)
        return {
            "mode": "auto" if self.spec.auto else "fixed",
            "exit": encode_key(cur) if cur else None,
            "score": chosen["score"] if chosen else None,
            "routes": [str(n) for n in self.spec.routes],
            "switches": dict(self.core.counters),
            "providers": rows,
        }

    def _connected(self) -> set[str]:
        return {encode_key(k) for k in self.peers.datapath.device.peers}
