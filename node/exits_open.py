"""Open admission in the running provider (`[exit] open = true`; docs/routing.md).

The link's `stranger` hook (protocol/link/handshake_receive.py) asks `admit` about a
native initiation from a key with no peer; node/core/open_admission.py decides. An
admitted stranger becomes a dynamic peer at once (synchronously, inside the handshake):
a native peer with no endpoint (it follows the client's path), its two derived
addresses as allowed IPs, the client role for accounting (credit window, receipts),
then the link's own `max_clients` check. The two address pools are routed into the
TUN once at start, so a dynamic peer needs no `ip` call. Its spec is dynamic
(`PeerSpec.origin` "open"): reload and SaveConfig leave it alone; idle ones are
forgotten by the timer task. WireGuard-mode initiations never reach the hook.
"""

import logging
from collections import Counter
from collections.abc import Callable
from ipaddress import ip_network
from typing import TYPE_CHECKING

import trio

from tidewire.node import netconf
from tidewire.node.config import PeerSpec
from tidewire.node.core.capacity import live
from tidewire.node.core.open_admission import POOL4, POOL6, OpenAdmission, client_addresses
from tidewire.node.core.roles import Role
from tidewire.protocol.errors import LocalProtocolError
from tidewire.protocol.keys import short
from tidewire.protocol.link.peer import Peer, PeerConfig
from tidewire.protocol.link.profile import Mode

if TYPE_CHECKING:
    from tidewire.node.config import Network
    from tidewire.node.daemon import Daemon
    from tidewire.node.peers import Peers

log = logging.getLogger("tidewire.node")

PUBLISH_EVERY = 60.0  # s: the shortest interval between re-signings for load


async def start_open_admission(
    daemon: "Daemon", peers: "Peers", routing: netconf.Routing
) -> "OpenExit | None":
    """With [exit] open: the stranger hook, its sweeps in the timer task, and the two
    address pools routed into the TUN."""
    cfg = daemon.cfg
    if not cfg.exit.open:
        return None
    opened = OpenExit(peers, max_clients=cfg.share.max_clients)
    if daemon.discovery is not None:  # our record's load follows the clients we admit
        disc = daemon.discovery
        opened.on_load_change = lambda: disc.republish.set()
    peers.datapath.timers.add(opened)
    pools = opened.pools()
    await trio.to_thread.run_sync(lambda: netconf.add_routes(cfg.name, pools, table=routing))
    log.info("open admission: native clients with no configuration are admitted")
    return opened


class OpenExit:
    def __init__(self, peers: "Peers", *, max_clients: int | None) -> None:
        self.peers = peers
        device = peers.datapath.device
        self.core = OpenAdmission(
            live=lambda k, now: k in device.peers and live(device.peers[k], now=now),
            confirmed=lambda k: k in device.peers and device.peers[k].current is not None,
            cap=max(16, 2 * max_clients) if max_clients else 256,
        )
        device.stranger = self.admit
        self.on_load_change: Callable[[], None] | None = None
        self.published_count = 0  # dynamic peers when the record was last re-signed
        self.published_at = -PUBLISH_EVERY
        self.publish_due: float | None = None
        peers.datapath.control.on_forget.append(self.core.forgotten)  # however it goes

    @staticmethod
    def pools() -> "list[Network]":
        """Routed into the TUN at start: where every dynamic client's addresses are."""
        return [POOL4, POOL6]

    def admit(self, key: bytes, now: float) -> Peer | None:
        ok, evict = self.core.decide(key, now=now)
        if not ok:
            return None
        if evict is not None:
            self.forget(evict)
        dp = self.peers.datapath
        try:
            peer = dp.device.add_peer(PeerConfig(public_key=key, mode=Mode.NATIVE))
        except LocalProtocolError:  # a low-order point: never a real client
            self.core.counters["refused_key"] += 1
            return None
        if dp.device.admit is not None and not dp.device.admit(peer, now):
            dp.device.remove_peer(key)  # max_clients: counted by the share's admission
            self.core.counters["refused_capacity"] += 1
            return None
        v4, v6 = client_addresses(key)
        nets: list[Network] = [ip_network(f"{v4}/32"), ip_network(f"{v6}/128")]
        for net in nets:
            dp.routes.insert(net, peer)
        self.peers.allowed[key] = nets
        self.peers.specs[key] = PeerSpec(
            public_key=key, allowed_ips=list(nets), mode=Mode.NATIVE, origin="open"
        )
        if self.peers.accountant is not None:
            self.peers.accountant.set_role(key, Role.CLIENT)
        dp.paths.add(peer, [])
        self.core.admitted(key, now=now)
        self._load_changed(now=now)
        log.info("client %s admitted openly (%s)", short(key), ", ".join(map(str, nets)))
        return peer

    def forget(self, key: bytes) -> None:
        if key in self.peers.datapath.device.peers:
            self.peers._forget(key)
            log.info("dynamic client %s forgotten", short(key))

    def get_timer(self) -> float | None:
        times = [t for t in (self.core.get_timer(), self.publish_due) if t is not None]
        return min(times, default=None)

    def handle_timer(self, *, now: float) -> None:
        due = self.core.get_timer()
        if due is not None and now >= due:
            for key in self.core.sweep(now=now):
                self.forget(key)
        self._load_changed(now=now)

    def _load_changed(self, *, now: float) -> None:
        """Re-sign our record when the number of dynamic clients moved, at most once
        per PUBLISH_EVERY (a flood must not turn into DHT puts)."""
        count = len(self.core.dynamic)
        if count == self.published_count or self.on_load_change is None:
            self.publish_due = None
            return
        if now - self.published_at < PUBLISH_EVERY:
            self.publish_due = self.published_at + PUBLISH_EVERY
            return
        self.published_count, self.published_at, self.publish_due = count, now, None
        self.on_load_change()

    def counters(self) -> Counter[str]:
        return Counter({"dynamic": len(self.core.dynamic), **self.core.counters})
