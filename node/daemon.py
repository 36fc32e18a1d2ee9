"""`tidewire up`: the node's lifecycle around the data path.

Start-up, in order: take the per-interface lock (a second daemon for the same
interface stops here), load persisted timestamps, bind the UDP sockets (IPv4
and IPv6), create the TUN device, set addresses, MTU and routes, install the
exit rules if this is a provider, open the control socket, then run the data
path until SIGTERM, SIGINT or `tidewire down`. Tear-down undoes each step in
reverse; the TUN interface goes away with its file descriptor even on kill -9,
and stale rules and firewall tables are removed at the next start.
"""

import base64
import fcntl
import logging
import os
import signal
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from tidewire.node import control, firewall, netconf
from tidewire.node.accounting import Accountant
from tidewire.node.config import NodeConfig, PeerSpec
from tidewire.node.core.exit_policy import ExitPolicy
from tidewire.node.datapath import DataPath
from tidewire.node.errors import NodeError
from tidewire.node.requests import peer_spec_from_request, request_key, resolve
from tidewire.node.state import TimestampStore
from tidewire.node.status import build_status
from tidewire.node.ticker import INTERVAL
from tidewire.node.transports.udp import enable_gro
from tidewire.node.tun import enable_tso, open_tun
from tidewire.node.usage import epoch_report, usage
from tidewire.protocol.errors import LocalProtocolError
from tidewire.protocol.link.device import Device
from tidewire.protocol.link.peer import Peer, PeerConfig

if TYPE_CHECKING:  # sqlite3 is loaded only by nodes that keep a ledger (exit role)
    from tidewire.node.ledger import Ledger

log = logging.getLogger("tidewire.node")

SOCKET_BUFFER = 4 << 20


class Daemon:
    def __init__(
        self,
        cfg: NodeConfig,
        *,
        exit_enabled: bool | None = None,
        offloads: bool = True,
        tun_tso: bool = False,
        tick: float = INTERVAL,
    ) -> None:
        self.cfg = cfg
        self.offloads = offloads
        self.tick = tick  # seconds between wake-ups while the link is in use; 0 is off
        self.tun_tso = tun_tso  # asked for; whether the kernel agreed is in datapath.tun_tso
        self.exit_enabled = cfg.exit.enabled if exit_enabled is None else exit_enabled
        self.sockets: dict[int, socket.socket] = {}
        self.listen_port = 0
        self.table = 0
        self.tun_fd = -1
        self.lock_fd = -1
        self.forwarding: dict[str, str] = {}
        self.firewall_installed = False
        self.outbound_interface: str | None = None
        self.peer_allowed: dict[bytes, list[Any]] = {}
        self.peer_specs: dict[bytes, PeerSpec] = {}
        self.cancel = trio.CancelScope()
        self.datapath: DataPath | None = None
        self.accountant: Accountant | None = None
        self.ledger: Ledger | None = None

    # -- lifecycle ----------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        cfg = self.cfg
        try:
            self._lock()
            try:
                store = TimestampStore(cfg.state_dir / cfg.name)
            except OSError as exc:
                raise NodeError(
                    f"cannot use the state directory {cfg.state_dir}: {exc.strerror}"
                ) from None
            device = Device(
                private_key=cfg.private_key,
                rng=os.urandom,
                wall_offset=time.time() - trio.current_time(),
                mtu=cfg.mtu,
            )
            self._bind()
            self.table = self.listen_port
            if self.exit_enabled:
                ExitPolicy(
                    allow=cfg.exit.allow,
                    deny=cfg.exit.deny,
                    own_addresses=netconf.local_addresses(),
                )
            self.tun_fd = open_tun(cfg.name, vnet_hdr=self.offloads)
            dp = self.datapath = DataPath(
                device=device,
                tun_fd=self.tun_fd,
                sockets=self.sockets,
                policy=None,
                persist_timestamp=store.put,
            )
            dp.batch.gso = self.offloads
            dp.tun_gro = self.offloads
            dp.tun_tso = self.offloads and self.tun_tso and enable_tso(self.tun_fd)
            dp.udp_gro = self.offloads and enable_gro(list(self.sockets.values()))
            dp.ticker.interval = self.tick
            if self.exit_enabled:
                from tidewire.node.ledger import Ledger, LedgerError

                try:
                    self.ledger = Ledger(cfg.state_dir / cfg.name / "ledger.sqlite")
                except LedgerError as exc:
                    raise NodeError(str(exc)) from None
            self.accountant = dp.accountant = Accountant(
                public_key=device.public_key,
                static_private=cfg.private_key,
                config=cfg.accounting,
                ledger=self.ledger,
                epoch_seconds=cfg.epoch_seconds,
                send_control=dp.send_control,
                disconnect=self._disconnect,
                rng=os.urandom,
            )
            netconf.configure_link(cfg.name, addresses=cfg.addresses, mtu=cfg.mtu)
            if self.exit_enabled:  # after the link, so its own addresses are the router's too
                dp.policy = ExitPolicy(
                    allow=cfg.exit.allow,
                    deny=cfg.exit.deny,
                    own_addresses=netconf.local_addresses(),
                )
            netconf.remove_rules(self.table)
            for spec in cfg.peers:
                await self.add_peer(spec, last_timestamp=store.get(spec.public_key))
            if self.exit_enabled:
                self._start_exit(dp.policy)
            for spec in cfg.peers:
                peer = device.peers[spec.public_key]
                if peer.endpoint is not None and spec.persistent_keepalive:
                    device.send_keepalive(peer, now=trio.current_time())
            dp.flush()
            with self.cancel:
                async with trio.open_nursery() as nursery:
                    await nursery.start(control.serve, cfg.control_socket, self.handle_request)
                    nursery.start_soon(self._signals)
                    await nursery.start(self.accountant.run)
                    nursery.start_soon(dp.tun_reader)
                    nursery.start_soon(dp.timer_task)
                    nursery.start_soon(dp.ticker.run)
                    for sock in self.sockets.values():
                        nursery.start_soon(dp.udp_reader, sock)
                    log.info(
                        "%s up: public key %s, port %d, %d peers%s",
                        cfg.name,
                        base64.b64encode(device.public_key).decode(),
                        self.listen_port,
                        len(cfg.peers),
                        f", exit via {self.outbound_interface}" if self.exit_enabled else "",
                    )
                    task_status.started()
        finally:
            if self.accountant is not None and self.ledger is not None:
                with trio.CancelScope(shield=True), trio.move_on_after(5):
                    await self.accountant.flush()  # the counters since the last flush
            self._teardown()

    def _lock(self) -> None:
        assert self.cfg.control_socket is not None
        lock_path = self.cfg.control_socket.with_suffix(".lock")
        try:
            lock_path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise NodeError(
                f"cannot create the lock file {lock_path}: {exc.strerror} (run as root?)"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            raise NodeError(
                f"a tidewire daemon for {self.cfg.name} is already running"
                + (f" (pid {other})" if other else "")
                + f"; stop it with `tidewire down {self.cfg.name}`"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.lock_fd = fd

    def _bind(self) -> None:
        port = self.cfg.listen_port or 0
        s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s4.bind(("0.0.0.0", port))
        except OSError as exc:
            s4.close()
            raise NodeError(f"cannot listen on UDP port {port}: {exc.strerror}") from None
        self.listen_port = s4.getsockname()[1]
        self.sockets[socket.AF_INET] = s4
        try:
            s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s6.bind(("::", self.listen_port))
            self.sockets[socket.AF_INET6] = s6
        except OSError as exc:
            log.warning("no IPv6 socket (%s); IPv4 only", exc.strerror)
        for s in self.sockets.values():
            s.setblocking(False)
            for opt, force in ((socket.SO_RCVBUF, 33), (socket.SO_SNDBUF, 32)):  # *BUFFORCE
                try:
                    s.setsockopt(socket.SOL_SOCKET, force, SOCKET_BUFFER)
                except OSError:
                    s.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, self.listen_port)
            except OSError:
                log.warning(
                    "cannot mark the UDP sockets; a default route through the tunnel will loop"
                )

    def _start_exit(self, policy: ExitPolicy | None) -> None:
        assert policy is not None
        out = self.cfg.exit.outbound_interface or netconf.default_route_interface()
        if out is None:
            raise NodeError(
                "the exit role needs an outbound interface: set [exit] outbound_interface"
            )
        self.outbound_interface = out
        if firewall.remove(self.cfg.name):
            log.info("removed stale exit rules of %s from an earlier run", self.cfg.name)
        self.forwarding = firewall.enable_forwarding()
        firewall.install(self.cfg.name, out, policy)
        self.firewall_installed = True

    def _teardown(self) -> None:
        if self.ledger is not None:
            self.ledger.close()
        if self.firewall_installed:
            firewall.remove(self.cfg.name)
        if self.forwarding:
            firewall.restore_forwarding(self.forwarding)
        if self.table:
            try:
                netconf.remove_rules(self.table)
            except Exception:  # pragma: no cover - best effort on the way out
                log.exception("removing routing rules")
        if self.tun_fd >= 0:
            os.close(self.tun_fd)  # removes the interface, its addresses and routes
            self.tun_fd = -1
        for s in self.sockets.values():
            s.close()
        self.sockets.clear()
        if self.lock_fd >= 0:
            os.close(self.lock_fd)
            self.lock_fd = -1

    async def _signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                log.info("%s: stopping (%s)", self.cfg.name, signal.Signals(signum).name)
                self.cancel.cancel()
                return

    # -- peers ----------------------------------------------------------------

    async def add_peer(self, spec: PeerSpec, *, last_timestamp: bytes | None = None) -> Peer:
        assert self.datapath is not None
        endpoint = None
        if spec.endpoint:
            endpoint = await resolve(spec.endpoint)
        peer = self.datapath.device.add_peer(
            PeerConfig(
                public_key=spec.public_key,
                preshared_key=spec.preshared_key,
                endpoint=endpoint,
                persistent_keepalive=spec.persistent_keepalive,
                mode=spec.mode,
                last_sent_timestamp=last_timestamp,
            )
        )
        try:
            netconf.add_routes(self.cfg.name, spec.allowed_ips, table=self.table)
        except Exception:
            self.datapath.device.remove_peer(spec.public_key)  # a refused add changes nothing
            netconf.remove_routes(self.cfg.name, spec.allowed_ips, table=self.table)
            raise
        for net in spec.allowed_ips:
            self.datapath.routes.insert(net, peer)
        if self.accountant is not None:
            self.accountant.set_role(spec.public_key, self._role(spec))
        self.peer_allowed[spec.public_key] = list(spec.allowed_ips)
        self.peer_specs[spec.public_key] = spec
        return peer

    def remove_peer(self, public_key: bytes) -> None:
        assert self.datapath is not None
        peer = self.datapath.device.peers.get(public_key)
        if peer is None:
            raise control.RequestError("no peer with that public key")
        self.datapath.routes.remove(peer)
        self.datapath.device.remove_peer(public_key)
        if self.accountant is not None:
            self.accountant.set_role(public_key, None)
        netconf.remove_routes(
            self.cfg.name, self.peer_allowed.get(public_key, []), table=self.table
        )
        self.peer_allowed.pop(public_key, None)
        self.peer_specs.pop(public_key, None)

    def _role(self, spec: PeerSpec) -> str | None:
        if spec.provider:
            return "provider"
        if self.exit_enabled:
            return "stock" if spec.mode.value == "wireguard" else "client"
        return None

    def _disconnect(self, peer_key: bytes) -> None:
        """Stop talking to a peer. A provider we refused is removed altogether, so it cannot
        even handshake again; a client that is cut off loses its session keys."""
        assert self.datapath is not None
        peer = self.datapath.device.peers.get(peer_key)
        if (
            peer is not None
            and self.accountant is not None
            and self.accountant.roles.get(peer_key) == "provider"
        ):
            self.datapath.routes.remove(peer)
            self.datapath.device.remove_peer(peer_key)
            netconf.remove_routes(
                self.cfg.name, self.peer_allowed.pop(peer_key, []), table=self.table
            )
            self.peer_specs.pop(peer_key, None)
            return
        if peer is not None:
            peer.zero(self.datapath.device.index)
            peer.persistent_keepalive = 0
            peer.staged.clear()
            peer.clear_timers()

    # -- control requests ---------------------------------------------------

    async def handle_request(self, req: dict[str, Any]) -> dict[str, Any]:
        cmd = req["cmd"]
        if cmd == "status":
            return {"status": build_status(self)}
        if cmd == "down":
            log.info("%s: stopping (tidewire down)", self.cfg.name)
            return {"after_reply": self.cancel.cancel}
        if cmd == "peer_add":
            spec = peer_spec_from_request(req)
            if self.datapath and spec.public_key in self.datapath.device.peers:
                raise control.RequestError("a peer with that public key is already configured")
            try:
                await self.add_peer(spec)
            except (LocalProtocolError, NodeError, OSError) as exc:
                raise control.RequestError(str(exc)) from None
            return {}
        if cmd == "peer_remove":
            self.remove_peer(request_key(req, "public_key"))
            return {}
        if cmd == "usage":
            assert self.accountant is not None
            rows = await trio.to_thread.run_sync(self.ledger.usage) if self.ledger else []
            return {"usage": {"interface": self.cfg.name, **usage(self.accountant, rows)}}
        if cmd == "report":
            assert self.accountant is not None
            epoch = req.get("epoch")
            if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
                raise control.RequestError("epoch: a non-negative integer is required")
            try:
                return {"report": await epoch_report(self.accountant, epoch)}
            except ValueError as exc:
                raise control.RequestError(str(exc)) from None
        raise control.RequestError(
            f"unknown command {cmd!r} (known: status, usage, report, peer_add, peer_remove, down)"
        )


__all__ = ["Daemon", "NodeError", "Path"]
