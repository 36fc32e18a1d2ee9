"""`tidewire up`: the node's lifecycle, and nothing else.

Start-up, in order: take the per-interface lock (a second daemon for the same
interface stops here), load persisted timestamps, run PreUp, bind the transports,
install the kill switch, create the TUN device, set addresses, MTU and routes (where
`Table` says), install the exit rules if this is a provider, open the control socket,
run PostUp, then run the data path until SIGTERM, SIGINT or `tidewire down` (then
PreDown and SaveConfig; PostDown after the tear-down; node/service.py); SIGHUP re-reads
the config and applies the difference (reload.py), as `tidewire reload` does.
Tear-down undoes each step in reverse (host.py); the TUN interface goes away with its
file descriptor even on kill -9, and stale rules and firewall tables are removed at the
next start. `Daemon.run` reads as those phases: the host's side before the data path
(`_open_host`), the data path and peers configured (`_configure`), the nursery's tasks
(`_start_tasks`), and the tear-down however the run ended (`_shut_down`). The data
path and its components are built in components.py, the stream listeners opened in
listeners.py; peers live in peers.py, control requests in handlers.py, the packet path
in datapath.py; nothing here runs `ip` or `nft` on the event loop itself (they go to a
worker thread).
"""

import base64
import contextlib
import logging
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from tidewire.node import (
    addresses,
    components,
    control,
    dns,
    firewall,
    host,
    listeners,
    memory,
    netconf,
    sdnotify,
    uapi_server,
)
from tidewire.node.accounting import Accountant
from tidewire.node.config import NodeConfig, PeerSpec
from tidewire.node.config.service import AUTO
from tidewire.node.core.exit_policy import ExitPolicy
from tidewire.node.core.ticker import INTERVAL
from tidewire.node.datapath import DataPath
from tidewire.node.dataplane_loop import readers
from tidewire.node.errors import NodeError
from tidewire.node.exits import ExitClient, exit_addresses, start_exit_choice
from tidewire.node.exits_open import OpenExit, start_open_admission
from tidewire.node.handlers import Handlers
from tidewire.node.host import off_loop
from tidewire.node.metrics import Registry
from tidewire.node.nat import NatTraversal
from tidewire.node.peers import PeerError, Peers
from tidewire.node.relay import RelayNode
from tidewire.node.reload import Reloader, ReloadError
from tidewire.node.service import Service
from tidewire.node.sharing import Sharing
from tidewire.node.state import TimestampStore
from tidewire.node.timestamps import TimestampWriter
from tidewire.node.transports.masked import MaskedTransport
from tidewire.node.transports.relay import RelayTransport
from tidewire.node.transports.stream import StreamTransport
from tidewire.node.transports.udp import UdpTransport
from tidewire.node.tun import open_tun
from tidewire.protocol.keys import short
from tidewire.protocol.link.device import Device
from tidewire.protocol.types import RELAY

if TYPE_CHECKING:  # sqlite3 is loaded only by nodes that keep a ledger (exit role)
    from tidewire.node.discovery import Discovery
    from tidewire.node.ledger import Ledger
    from tidewire.node.routing import Routing  # Babel is loaded only with a neighbour

log = logging.getLogger("tidewire.node")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
RELOAD_SIGNAL = signal.SIGHUP


class Daemon:
    accountant_class: type[Accountant] = Accountant  # the lab's misbehaving nodes replace it

    def __init__(
        self,
        cfg: NodeConfig,
        *,
        exit_enabled: bool | None = None,
        offloads: bool = True,
        tun_tso: bool = False,
        tick: float = INTERVAL,
        run_hooks: bool = True,
        dataplane: str | None = None,
    ) -> None:
        self.cfg = cfg
        self.service = Service(cfg, run_hooks=run_hooks)  # hooks, kill switch, SaveConfig
        self.offloads = offloads
        self.tick = tick  # seconds between wake-ups while the link is in use; 0 is off
        self.dataplane = dataplane  # "native", "python" or None: native when built
        self.tun_tso = tun_tso  # asked for; whether the kernel agreed is in datapath.tun_tso
        self.exit_enabled = cfg.exit.enabled if exit_enabled is None else exit_enabled
        self.exit_flag = exit_enabled is not None  # --exit: the file's [exit] enabled is moot
        self.udp = UdpTransport(Counter())
        self.masked: MaskedTransport | None = None  # made once the node's key is known
        self.streams: list[StreamTransport] = []  # tcp and tls, likewise
        self.listen_port = 0
        self.table = 0  # of the default-route rules (Table = auto), 0 if none
        self.mark = 0  # on the outer sockets: FwMark, else the listen port
        self.tun_fd = -1
        self.lock_fd = -1
        self.forwarding: dict[str, str] = {}
        self.firewall_installed = False
        self.guard_installed = False
        self.outbound_interface: str | None = None
        self.cancel = trio.CancelScope()
        self.datapath: DataPath | None = None
        self.peers: Peers | None = None
        self.accountant: Accountant | None = None
        self.ledger: Ledger | None = None
        self.timestamps: TimestampWriter | None = None
        self.sharing: Sharing | None = None
        self.routing: Routing | None = None
        self.nat: NatTraversal | None = None
        self.relay: RelayNode | None = None  # relay frames, ours and others' (node/relay.py)
        self.metrics = Registry()
        self.started_at = 0.0  # trio.current_time() when run() began (status: uptime)
        self.dns_record: Path | None = None
        self.discovery: Discovery | None = None
        self.exits: ExitClient | None = None  # [routing]: the exit choice (node/exits.py)
        self.open_exit: OpenExit | None = None  # [exit] open = true (node/exits_open.py)
        self.notifier = sdnotify.default()  # READY, STATUS, WATCHDOG, STOPPING to systemd
        self.reloader = Reloader(self)

    # -- lifecycle ----------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Start (`_open_host`, components.build, `_configure`), run the tasks until a
        stop (`_start_tasks`), then PreDown and SaveConfig at a clean stop, and always
        the tear-down (`_shut_down`)."""
        cfg = self.cfg
        self.started_at = trio.current_time()
        try:
            host.take_lock(self)
            try:
                store = TimestampStore(cfg.state_dir / cfg.name)
            except OSError as exc:
                raise NodeError(
                    f"cannot use the state directory {cfg.state_dir}: {exc.strerror}"
                ) from None
            writer = self.timestamps = TimestampWriter(store)
            device = Device(
                private_key=cfg.private_key,
                rng=os.urandom,
                wall_offset=time.time() - trio.current_time(),
                mtu=cfg.mtu,
            )
            await self.service.check()
            await off_loop(firewall.recover_forwarding)  # what a killed exit left switched on
            await self.service.pre_up()
            routing, own = await self._open_host(device)
            assert self.masked is not None
            dp = await components.build(
                self, device=device, writer=writer, masked=self.masked, routing=routing, own=own
            )
            await self._configure(dp, store, routing)
            with self.cancel:
                async with trio.open_nursery() as nursery:
                    await self._start_tasks(nursery, dp, writer)
                    await self.service.post_up()
                    task_status.started()
                    memory.release_free_memory()  # what starting freed (node/memory.py)
                    self.notifier.ready(
                        f"{cfg.name} up: {len(cfg.peers)} peers, {', '.join(self.listening())}"
                    )
            # here only after a clean stop (a signal, `tidewire down`): an error skips it
            with trio.CancelScope(shield=True):
                await self.service.pre_down()  # then SaveConfig, as wg-quick down does
                await off_loop(self.service.save_config, self.peers)
        finally:
            await self._shut_down()

    async def _open_host(self, device: Device) -> tuple[netconf.Routing, list[str]]:
        """The host's side before the data path: the sockets (UDP, masked, streams), the
        kill switch, the kernel's handshake guard and the TUN. Returns where the routes go
        and the host's own addresses."""
        cfg = self.cfg
        self.listen_port = self.udp.bind(cfg.listen_port or 0, mark=cfg.service.fwmark)
        self.mark = cfg.service.fwmark or self.listen_port
        routing = netconf.Routing.of(cfg.service.table, mark=self.mark)
        self.table = routing.table if routing.mode == AUTO else 0
        masked = self.masked = MaskedTransport(Counter(), own_public=device.public_key)
        if cfg.masked_port is not None:  # a listener: clients may dial us masked
            masked.listen(cfg.masked_port, mark=self.mark)
        else:  # a socket of our own for dialling masked listeners
            masked.bind(0, mark=self.mark)
        self.streams = await listeners.open_streams(self, device.public_key)
        await self.service.install_kill_switch(mark=self.mark)  # before the TUN
        why = await off_loop(firewall.install_guard, cfg.name, self.listen_port)
        self.guard_installed = why is None
        if why is not None:
            log.warning("no kernel-side handshake limit (%s); the node's own limit holds", why)
        own = await off_loop(netconf.local_addresses)
        if self.exit_enabled:  # a policy that cannot be built stops us before the TUN
            ExitPolicy(allow=cfg.exit.allow, deny=cfg.exit.deny, own_addresses=own)
        self.tun_fd = open_tun(cfg.name, vnet_hdr=self.offloads)
        return routing, own

    async def _configure(
        self, dp: DataPath, store: TimestampStore, routing: netconf.Routing
    ) -> None:
        """With the data path built: the TUN's addresses, the exit policy, the peers
        (configured, then bootstrap), the exit and open admission, the first keepalives,
        then DNS (after the routes: the servers are reached through the tunnel)."""
        cfg = self.cfg
        device = dp.device
        peers = self.peers
        assert peers is not None
        tun_addresses = cfg.addresses + exit_addresses(cfg, device.public_key)
        await off_loop(
            lambda: netconf.configure_link(cfg.name, addresses=tun_addresses, mtu=cfg.mtu)
        )
        dp.mtu.set_routers([a.ip.packed for a in cfg.addresses])  # "too big" comes from here
        if self.exit_enabled:  # after the link, so its own addresses are the router's too
            dp.policy = ExitPolicy(
                allow=cfg.exit.allow,
                deny=cfg.exit.deny,
                own_addresses=await off_loop(netconf.local_addresses),
                resolver=[str(a.ip) for a in cfg.addresses] if cfg.dns.resolver else (),
            )
        await off_loop(host.clear_stale_rules, self)
        for spec in cfg.peers:
            await peers.add(spec, last_timestamp=store.get(spec.public_key))
        discovery = self._discovery()
        discovery.attach(dp.control, dp.timers)
        discovery.watchers.append(self._pay_relays)
        relayed = dp.transports.get(RELAY)
        if isinstance(relayed, RelayTransport):
            relayed.on_open = self._pay_relays  # our datagrams go through a relay first
        await self._add_bootstrap(peers, store)
        if self.exit_enabled:
            await host.start_exit(self, dp.policy)
            self.open_exit = await start_open_admission(self, peers, routing)
        for spec in cfg.peers:
            peer = device.peers[spec.public_key]
            if peer.path is not None and spec.persistent_keepalive:
                device.send_keepalive(peer, now=trio.current_time())
        dp.flush()
        if cfg.dns.servers:
            settings = dns.DnsSettings(cfg.dns.servers, cfg.dns.search)
            self.dns_record = await off_loop(
                lambda: dns.apply(settings, iface=cfg.name, state_dir=cfg.state_dir / cfg.name)
            )
        else:  # a killed run's DNS, even if this one sets none
            await off_loop(dns.recover, cfg.state_dir / cfg.name)

    async def _start_tasks(
        self, nursery: trio.Nursery, dp: DataPath, writer: TimestampWriter
    ) -> None:
        """The node's tasks in the one nursery: the writers and servers first, the
        readers and the timer task of the packet path last, then the line saying it is up."""
        cfg = self.cfg
        peers, accountant, sharing, masked = self.peers, self.accountant, self.sharing, self.masked
        assert peers is not None and accountant is not None and sharing is not None
        assert masked is not None
        await nursery.start(writer.run)
        await nursery.start(addresses.watch_addresses, dp.policy)
        await nursery.start(peers.run)
        await nursery.start(control.serve, cfg.control_socket, Handlers(self))
        uapi = uapi_server.Uapi(self)
        await nursery.start(uapi_server.serve, uapi_server.socket_path(cfg.name), uapi)
        nursery.start_soon(self._signals)
        await nursery.start(accountant.run)
        await nursery.start(sharing.run)
        if cfg.metrics_listen is not None:
            await self._start_metrics(nursery, *cfg.metrics_listen)
        if self.discovery is not None:
            await nursery.start(self.discovery.run)
            self._pay_relays()  # the records kept on disk
            self.exits = await start_exit_choice(self, nursery, self.discovery)
        nursery.start_soon(dp.timers.run)
        for reader in readers(dp, self.udp, masked, sharing):  # the TUN's and the sockets'
            nursery.start_soon(reader)
        if cfg.dns.resolver:
            from tidewire.node.resolver import Resolver, system_upstreams

            await nursery.start(
                Resolver(
                    addresses=[str(a.ip) for a in cfg.addresses],
                    upstreams=cfg.dns.upstream or await off_loop(system_upstreams),
                ).serve
            )
        for stream in self.streams:
            nursery.start_soon(stream.serve, dp)
        log.info(
            "%s up: public key %s, listening on %s, %d peers%s",
            cfg.name,
            base64.b64encode(dp.device.public_key).decode(),
            ", ".join(self.listening()),
            len(cfg.peers),
            f", exit via {self.outbound_interface}" if self.exit_enabled else "",
        )

    async def _shut_down(self) -> None:
        """However the run ended: PreDown if it has not run, the accounting and the
        timestamps written out, the quota saved, the host's changes undone, PostDown."""
        self.notifier.stopping()
        with trio.CancelScope(shield=True):
            await self.service.pre_down()  # if PostUp ran and it has not yet
            if self.accountant is not None and self.ledger is not None:
                with trio.move_on_after(5):
                    await self.accountant.flush()  # the counters since the last flush
            if self.timestamps is not None:
                with trio.move_on_after(5):
                    await self.timestamps.drain()
            if self.sharing is not None and self.sharing.quota is not None:
                await off_loop(self.sharing.save)
            await off_loop(host.teardown, self)
            await self.service.post_down()

    def listening(self) -> list[str]:
        """What the node listens on, as URLs (the masked dialling socket is not a listener)."""
        return listeners.listening(self)

    def _pay_relays(self) -> None:
        """Relays our records say want receipts are paid (node/relay_pay.py)."""
        from tidewire.node.relay_pay import chosen_relays, pay_relays

        dp = self.datapath
        opened = chosen_relays(dp.paths) if dp is not None else set()
        if self.peers is not None and self.discovery is not None and opened:
            routing = self.cfg.routing
            pay_relays(
                self.peers,
                self.discovery.cache,
                opened=opened,
                max_price=routing.max_price if routing is not None else None,
                wall=time.time(),
            )

    def _discovery(self) -> "Discovery":
        from functools import partial

        from tidewire.node.discovery import Discovery
        from tidewire.node.own_record import provider_record
        from tidewire.protocol.accounting.receipts import signing_key_from_static

        self.discovery = Discovery(
            self.cfg.discovery,
            state_dir=self.cfg.state_dir / self.cfg.name,
            sign_key=signing_key_from_static(self.cfg.private_key),
            own_record=partial(provider_record, self)
            if self.exit_enabled or self.cfg.relay.enabled
            else None,
            announce=self.exit_enabled,  # the rendezvous is where clients look for exits
            mark=self.mark,
            bindings=self._provider_keys,
        )
        self.discovery.register(self.metrics)
        return self.discovery

    def _provider_keys(self) -> list[tuple[bytes, bytes]]:
        """(link key, Ed25519 key) of each provider whose invoices named its key."""
        used = self.accountant.used if self.accountant is not None else {}
        return [(k, u.provider_key) for k, u in used.items() if u.provider_key is not None]

    async def _add_bootstrap(self, peers: Peers, store: TimestampStore) -> None:
        """[discovery] bootstrap: nodes to gossip with, added for the run as peers with
        no allowed IPs unless configured already; a keepalive opens the session."""
        dp = self.datapath
        assert dp is not None
        for key, endpoint in self.cfg.discovery.bootstrap:
            if key in dp.device.peers or key == dp.device.public_key:
                continue
            spec = PeerSpec(public_key=key, endpoint=endpoint, persistent_keepalive=25)
            try:
                peer = await peers.add(spec, last_timestamp=store.get(key))
            except (PeerError, OSError, ValueError) as exc:
                log.warning("bootstrap node %s: %s; skipped", endpoint, exc)
                continue
            log.info("bootstrap node %s (%s) added for gossip", short(key), endpoint)
            if peer.path is not None:
                dp.device.send_keepalive(peer, now=trio.current_time())

    async def _start_metrics(self, nursery: trio.Nursery, host: str, port: int) -> None:
        from tidewire.node import metrics_http  # and its HTTP server: only with metrics_listen

        try:
            await nursery.start(metrics_http.serve, host, port, self.metrics.render)
        except OSError as exc:
            raise NodeError(
                f"[metrics] listen: cannot listen on {host}:{port} ({exc.strerror or exc})"
            ) from None
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        log.info("%s: metrics at http://%s/metrics", self.cfg.name, where)

    async def _signals(self) -> None:
        with trio.open_signal_receiver(*STOP_SIGNALS, RELOAD_SIGNAL) as signals:
            async for signum in signals:
                if signum == RELOAD_SIGNAL:
                    log.info("%s: reloading %s (SIGHUP)", self.cfg.name, self.cfg.path)
                    with contextlib.suppress(ReloadError):  # logged; the node runs on as it was
                        await self.reloader.reload()
                    continue
                log.info("%s: stopping (%s)", self.cfg.name, signal.Signals(signum).name)
                self.cancel.cancel()
                return


__all__ = ["Daemon", "NodeError", "Path"]
