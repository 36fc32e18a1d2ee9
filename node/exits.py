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

Relays: a route-exchange neighbour with a finite route to a provider (and a direct path
of its own) can carry our session with it as a `relay://` path. Each exit peer's
candidates are the provider's endpoints and then those relays (`hops = 1`), or the
relays alone (`hops >= 2`), in the order the chooser gives (`ExitChooser.paths`); when
the first relay or the set changes, the path set is given the new candidates, starting
where it is now, so a working path carries on and a better first relay takes over once
it answers. With `hops >= 2` a provider that is already our peer (configured, a
bootstrap, a neighbour) is never used: it knows our address.
"""

import logging
import time
from collections.abc import Callable
from ipaddress import ip_interface
from typing import TYPE_CHECKING, Any

import trio

from tidewire.node.config import Interface, NodeConfig, PeerSpec
from tidewire.node.config.routing import RoutingSpec
from tidewire.node.core import relay
from tidewire.node.core.discovery import RecordCache
from tidewire.node.core.exits import ExitChooser, Offer, Preferences, babel_metric, path_metric
from tidewire.node.core.open_admission import client_addresses
from tidewire.node.core.paths.candidate import State
from tidewire.node.core.roles import Role
from tidewire.node.core.routing.metric import INFINITY
from tidewire.node.errors import NodeError
from tidewire.protocol.errors import LocalProtocolError
from tidewire.protocol.keys import encode_key, short
from tidewire.protocol.types import RELAY, Path

if TYPE_CHECKING:
    from tidewire.node.core.paths.pathset import PathSet
    from tidewire.node.daemon import Daemon
    from tidewire.node.discovery import Discovery
    from tidewire.node.peers import Peers
    from tidewire.node.routing import Routing

log = logging.getLogger("tidewire.exits")

HANDSHAKE_DEADLINE = 10.0  # s from adding a provider to a session with it
SECOND_PATH_GRACE = 1.0  # s a path failed over to under traffic has to answer
RETRY_DOWN = 30.0  # s before a provider that stopped answering is tried again
KEEPALIVE = 5  # s: the persistent keepalive of exit peers (their paths are measured)
SKINS = ("udp", "masked", "tcp", "tls")  # the order a provider's endpoints are tried in


def unconfirmed_failover(ps: "PathSet", *, now: float) -> bool:
    """The session failed over to another path (another relay, say) under traffic and
    that one has not answered within SECOND_PATH_GRACE either: the exit itself is gone,
    not a path to it (a relay path answers in well under a second)."""
    active = ps.active
    return (
        active is not None
        and ps.switches > 0
        and not ps.confirmed
        and ps.unanswered is not None
        and now - ps.unanswered >= SECOND_PATH_GRACE
    )


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
                exit=spec.exit,
                max_price=spec.max_price,
                region=spec.region,
                avoid=spec.avoid,
                hops=spec.hops,
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
            relays, selected = self.relays_to(key, now=now)
            self.core.routed_via(key, relays, selected=selected, now=now)

    def relays_to(self, key: bytes, *, now: float) -> tuple[dict[bytes, float], bytes | None]:
        """Our neighbours with a finite route to `key` that we reach on a direct path
        (metric in ms-equivalent), and the one our selected route goes through."""
        dev = self.peers.datapath.device
        dest = self.routing.engine.destinations.get(key) if self.routing is not None else None
        if dest is None:
            return {}, None
        if self.spec.hops >= 2 and key in dev.peers and key not in self.ours:
            return {}, None  # already our peer: it knows our address
        out: dict[bytes, float] = {}
        for via, route in dest.routes.items():
            peer = dev.peers.get(via)
            direct = peer is not None and peer.path is not None and peer.path.transport != RELAY
            if direct and route.metric < INFINITY and now < route.expires:
                out[via] = babel_metric(route.metric)
        sel = dest.selected
        return out, sel.neighbour if sel is not None and sel.metric < INFINITY else None

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
        elif ps is not None and unconfirmed_failover(ps, now=now):
            up = False
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
            elif key in self.ours:
                self._reroute(key)
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

    def _relayed(self, key: bytes) -> list[Path]:
        return [Path(RELAY, relay.address(via, key)) for via in self.core.relays(key)]

    def _reroute(self, key: bytes) -> None:
        """Give an exit peer's path set the relays the chooser wants now, if the first one
        or the set changed (the direct candidates stay as they were added)."""
        dp = self.peers.datapath
        ps, peer = dp.paths.sets.get(key), dp.device.peers.get(key)
        want = self._relayed(key)
        if ps is None or peer is None or not want:  # none now: keep trying the old ones
            return
        configured = [c.path for c in ps.candidates if not c.learned]
        have = [p for p in configured if p.transport == RELAY]
        if have[:1] == want[:1] and set(have) == set(want):
            return
        direct = [p for p in configured if p.transport != RELAY] if self.spec.hops < 2 else []
        paths = direct + want
        active = ps.active.path if ps.active is not None else peer.path
        dp.paths.add(peer, paths, start=active if active in paths else paths[0])
        log.info(
            "provider %s: relays now %s",
            short(key),
            ", ".join(short(v) for v in self.core.relays(key)),
        )

    async def _join(self, key: bytes, *, now: float) -> None:
        offer = self.core.offers[key]
        ends = sorted(
            (e for e in offer.endpoints if e.partition("://")[0] in SKINS),
            key=lambda e: SKINS.index(e.partition("://")[0]),
        )
        if self.spec.hops >= 2:  # never direct: the exit must not see our address
            ends = []
        ends += [f"relay://{relay.encode(via)}" for via in self.core.relays(key)]
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
            key: bytes = r["public_key"]  # type: ignore[assignment]
            r["public_key"] = encode_key(key)
            r["connected"] = r["public_key"] in self._connected()
            r["relays"] = [encode_key(v) for v in r["relays"]]  # type: ignore[attr-defined]
            r["path"] = self._path_of(key)
        cur = self.core.current
        chosen = next((r for r in rows if r["current"]), None)
        return {
            "mode": "auto" if self.spec.auto else "fixed",
            "hops": self.spec.hops,
            "exit": encode_key(cur) if cur else None,
            "score": chosen["score"] if chosen else None,
            "path": chosen["path"] if chosen else None,
            "waiting": self._waiting(rows) if cur is None else None,
            "routes": [str(n) for n in self.spec.routes],
            "switches": dict(self.core.counters),
            "providers": rows,
        }

    def _path_of(self, key: bytes) -> dict[str, Any] | None:
        """The path the session with `key` uses now: "relay" with the relay's key, or the
        transport and address."""
        dp = self.peers.datapath
        peer = dp.device.peers.get(key)
        if peer is None or peer.path is None:
            return None
        ps = dp.paths.sets.get(key)
        up = ps is not None and ps.active is not None and ps.active.state is State.UP
        if peer.path.transport == RELAY:
            keys = relay.keys_of(peer.path.address[0])
            via = encode_key(keys[0]) if keys is not None else None
            return {"transport": RELAY, "via": via, "up": up}
        return {"transport": peer.path.transport, "address": str(peer.path), "up": up}

    def _waiting(self, rows: list[dict[str, Any]]) -> str | None:
        """Why no exit is chosen, when the reason is ours to say."""
        if self.spec.hops >= 2 and rows and all(r["no_relay"] for r in rows if r["eligible"]):
            return f"no relay has a route to an eligible provider (hops = {self.spec.hops})"
        return None

    def _connected(self) -> set[str]:
        return {encode_key(k) for k in self.peers.datapath.device.peers}
