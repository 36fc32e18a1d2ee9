"""The data path and the components around it, wired as a node runs them.

`build` makes the `DataPath` over the TUN and the transports, then the parts that hang
on it, each registered with the one timer task where it keeps deadlines: the peers and
their path memory, the ledger and the accountant (a provider's credit, a client's
receipts), the systemd watchdog, the overlay route exchange (when a peer is a
neighbour), NAT traversal, relays and the shared rate and quota; last, the metrics.
The daemon (daemon.py) calls it once the TUN is open and before any peer is added.
"""

import logging
import os
from collections import Counter
from functools import partial
from typing import TYPE_CHECKING

import trio

from tidewire.node import netconf, sdnotify, status
from tidewire.node.datapath import DataPath
from tidewire.node.dataplane import choose as choose_dataplane
from tidewire.node.errors import NodeError
from tidewire.node.host import off_loop
from tidewire.node.nat import NatTraversal, local_endpoints
from tidewire.node.path_memory import PathMemory
from tidewire.node.peers import Peers
from tidewire.node.relay import RelayNode
from tidewire.node.sharing import Sharing
from tidewire.node.timestamps import TimestampWriter
from tidewire.node.transports.masked import MaskedTransport
from tidewire.node.transports.relay import RelayTransport
from tidewire.node.tun import enable_tso
from tidewire.protocol.link.device import Device
from tidewire.protocol.types import RELAY

if TYPE_CHECKING:
    from tidewire.node.daemon import Daemon

log = logging.getLogger("tidewire.node")


async def build(
    daemon: "Daemon",
    *,
    device: Device,
    writer: TimestampWriter,
    masked: MaskedTransport,
    routing: netconf.Routing,
    own: list[str],
) -> DataPath:
    """The data path and its components, set on the daemon as they are made."""
    cfg = daemon.cfg
    relayed = RelayTransport(Counter())
    dp = daemon.datapath = DataPath(
        device=device,
        tun_fd=daemon.tun_fd,
        transports={
            daemon.udp.name: daemon.udp,
            masked.name: masked,
            **{t.name: t for t in daemon.streams},
            RELAY: relayed,
        },
        policy=None,
        persist_timestamp=writer.put,
    )
    for transport in (daemon.udp, masked):
        transport.drops = transport.batch.drops = dp.drops
        transport.enable_offloads(gso=daemon.offloads, gro=daemon.offloads)
    for stream in daemon.streams:
        stream.drops = dp.drops
    dp.tun_gro = daemon.offloads
    dp.use_dataplane(choose_dataplane(daemon.dataplane))
    if daemon.dataplane != "python" and dp.dataplane != "native":
        log.warning("data plane: python, not native: %s", dp.dataplane_why)
    else:
        log.info("data plane: %s (%s)", dp.dataplane, dp.dataplane_why)
    # TSO reads pay where the cutting is native (BENCHMARKS.md, "the threads profiled")
    tso = daemon.tun_tso or dp.dataplane == "native"
    dp.tun_tso = daemon.offloads and tso and enable_tso(daemon.tun_fd)
    dp.ticker.interval = daemon.tick
    peers = daemon.peers = Peers(
        name=cfg.name, table=routing, datapath=dp, exit_enabled=daemon.exit_enabled
    )
    peers.memory = PathMemory(cfg.state_dir / cfg.name)
    dp.path_confirmed = peers.remember
    if daemon.exit_enabled or cfg.relay.require_receipts:  # a paid relay keeps receipts too
        from tidewire.node.ledger import Ledger, LedgerError

        try:
            daemon.ledger = await off_loop(Ledger, cfg.state_dir / cfg.name / "ledger.sqlite")
        except LedgerError as exc:
            raise NodeError(str(exc)) from None
    daemon.accountant = dp.accountant = peers.accountant = daemon.accountant_class(
        public_key=device.public_key,
        static_private=cfg.private_key,
        config=cfg.accounting,
        ledger=daemon.ledger,
        epoch_seconds=cfg.epoch_seconds,
        control=dp.control,
        disconnect=peers.disconnect,
        rng=os.urandom,
    )
    daemon.accountant.relay_clients = cfg.relay.require_receipts
    daemon.accountant.link_loss = partial(_link_loss, device)
    dp.timers.add(daemon.accountant)
    if daemon.notifier.watchdog is not None:  # pinged by the timer task: a stuck loop shows
        dp.timers.add(
            sdnotify.Watchdog(
                daemon.notifier, interval=daemon.notifier.watchdog, now=trio.current_time()
            )
        )
    if any(spec.neighbour for spec in cfg.peers):  # Babel's modules load only here
        from tidewire.node.core.routing.babel import Params
        from tidewire.node.routing import Routing

        daemon.routing = Routing(  # only a relay carries routes to others (a stub else)
            public_key=device.public_key,
            control=dp.control,
            now=trio.current_time(),
            params=Params(transit=cfg.relay.enabled),
        )
        dp.timers.add(daemon.routing)
        peers.routing = daemon.routing
    daemon.nat = peers.nat = NatTraversal(
        datapath=dp,
        spec=cfg.nat,
        local=local_endpoints(own, daemon.listen_port),
        now=trio.current_time(),
    )
    dp.timers.add(daemon.nat)
    daemon.relay = RelayNode(
        dp,
        relayed,
        config=cfg.relay,
        route=lambda key: daemon.routing.next_hop(key) if daemon.routing else None,
        trusted=peers.is_neighbour,
    )
    relayed.drops = dp.drops
    daemon.sharing = Sharing(
        dp, cfg.share, provider=daemon.exit_enabled, state_dir=cfg.state_dir / cfg.name
    )
    status.register(daemon.metrics, daemon)
    return dp


def _link_loss(device: Device, peer_key: bytes) -> tuple[int, int]:
    """A peer's (datagrams lost, datagrams received) on its link (Peer.rx_loss)."""
    peer = device.peers.get(peer_key)
    return (0, 0) if peer is None else peer.rx_loss()
