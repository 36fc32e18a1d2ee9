"""WireGuard's userspace API on /var/run/wireguard/IFACE.sock, so the stock `wg` tools work.

The socket (mode 0600 in a 0755 directory, as wireguard-go's ipc/uapi_unix.go makes
it) takes `get=1` and `set=1` requests (node/core/uapi.py parses and formats them).
A `set` is parsed, checked and planned in full before anything changes, then applied
through `Peers`, so routes and roles stay consistent; requests run one at a time, as
wireguard-go's ipcMutex has them. Dynamic peers (`PeerSpec.dynamic`: an exit choice's
providers, an open provider's clients, native peers the node made itself) are not
configuration: `get` leaves them out, so `wg showconf` never writes them and `wg
syncconf` or `setconf` never removes them. Peers added here are WireGuard-mode peers. The
private key and listen port cannot change at run time (EOPNOTSUPP); the fwmark is the
node's own (its FwMark, or its listen port without one: the mark its routing rules
match), so a `set` of that value or of 0 is accepted and changes nothing. Bounded like
the control socket: at most MAX_CONNECTIONS, a request at most MAX_REQUEST bytes within
REQUEST_DEADLINE, an idle connection closed after IDLE_TIMEOUT. A socket left by a
killed run is replaced; the socket is removed on stop.
"""

import contextlib
import errno
import logging
import os
import socket
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from tidewire.node import unix_server
from tidewire.node.config import PeerSpec
from tidewire.node.core import uapi
from tidewire.node.errors import NodeError
from tidewire.protocol.errors import LocalProtocolError, RemoteProtocolError
from tidewire.protocol.keys import short
from tidewire.protocol.link.crypto import dh
from tidewire.protocol.link.profile import Mode
from tidewire.protocol.types import UDP
from tidewire.protocol.types import Path as LinkPath

if TYPE_CHECKING:
    from tidewire.node.daemon import Daemon

log = logging.getLogger("tidewire.uapi")

SOCKET_DIR = Path("/var/run/wireguard")  # where `wg` looks (wireguard-tools' RUNSTATEDIR)
MAX_CONNECTIONS = 8  # `wg` opens one per command
REQUEST_DEADLINE = 10.0  # seconds from a request's first byte to the end of its answer
IDLE_TIMEOUT = 30.0  # seconds a connection may wait with no request under way
_GRACE = 1.0  # seconds to hand over a last answer


def socket_path(name: str) -> Path:
    return SOCKET_DIR / f"{name}.sock"


class Uapi:
    """The daemon's side of the API: a snapshot for `get`, a plan applied for `set`."""

    def __init__(self, daemon: "Daemon") -> None:
        self.daemon = daemon
        self.lock = trio.Lock()

    async def handle(self, raw: bytes) -> bytes:
        async with self.lock:
            try:
                req = uapi.parse_request(raw)
                if isinstance(req, uapi.Get):
                    return uapi.format_get(self.snapshot())
                await self.apply(req)
                return uapi.format_errno(0)
            except uapi.UapiError as exc:
                log.warning("%s: wg request refused: %s", self.daemon.cfg.name, exc)
                return uapi.format_errno(exc.errno)

    def peer_states(self) -> list[uapi.PeerState]:
        d = self.daemon
        assert d.datapath is not None and d.peers is not None
        wall = time.time() - trio.current_time()  # now: the clock may have been set since
        out = []
        for key, peer in d.datapath.device.peers.items():
            spec = d.peers.specs.get(key)
            if spec is not None and spec.dynamic:
                continue  # not configuration: `wg showconf` never prints it, syncconf keeps it
            psk = peer.handshake.preshared_key
            path = peer.path
            out.append(
                uapi.PeerState(
                    public_key=key,
                    preshared_key=psk if any(psk) else None,
                    endpoint=path.address if path is not None and path.transport == UDP else None,
                    persistent_keepalive=int(peer.persistent_keepalive),
                    allowed_ips=list(d.peers.allowed.get(key, [])),
                    last_handshake=None if peer.last_handshake is None
                    else peer.last_handshake + wall,
                    rx_bytes=peer.rx_bytes,
                    tx_bytes=peer.tx_bytes,
                )
            )
        return out

    def snapshot(self) -> uapi.Snapshot:
        d = self.daemon
        assert d.datapath is not None
        return uapi.Snapshot(
            private_key=d.datapath.device.private_key,
            listen_port=d.listen_port,
            fwmark=d.mark,  # the transports mark their sockets with it (FwMark or the port)
            peers=self.peer_states(),
        )

    async def apply(self, req: uapi.SetRequest) -> None:
        d = self.daemon
        assert d.datapath is not None and d.peers is not None
        dev = d.datapath.device
        if req.private_key is not None and req.private_key != dev.private_key:
            raise uapi.UapiError(errno.EOPNOTSUPP, "private_key cannot change at run time")
        if req.listen_port is not None and req.listen_port != d.listen_port:
            raise uapi.UapiError(errno.EOPNOTSUPP, "listen_port cannot change at run time")
        if req.fwmark not in (None, 0, d.mark):
            raise uapi.UapiError(errno.EOPNOTSUPP, "fwmark is the node's own (FwMark or its port)")
        plan = uapi.plan(req, self.peer_states(), own_public=dev.public_key)
        for st in plan.add:
            try:
                dh(dev.private_key, st.public_key)
            except RemoteProtocolError:
                raise uapi.UapiError(errno.EINVAL, "a low-order public_key") from None
        try:
            await self._apply(plan)
        except (NodeError, LocalProtocolError, OSError) as exc:  # `ip` failed halfway
            raise uapi.UapiError(errno.EIO, str(exc)) from None

    async def _apply(self, plan: uapi.Plan) -> None:
        d = self.daemon
        assert d.datapath is not None and d.peers is not None
        dp, peers = d.datapath, d.peers
        now = trio.current_time()
        # adds, then updates, then removals: a prefix that moves is taken before it is let go
        for st in plan.add:
            spec = PeerSpec(
                public_key=st.public_key,
                preshared_key=st.preshared_key,
                endpoint=str(LinkPath(UDP, st.endpoint)) if st.endpoint else None,
                allowed_ips=list(st.allowed_ips),
                persistent_keepalive=st.persistent_keepalive,
                mode=Mode.WIREGUARD,  # the stock tools speak WireGuard
            )
            peer = await peers.add(spec, move=True)
            if st.persistent_keepalive and peer.path is not None:
                dp.device.send_keepalive(peer, now=trio.current_time())
        for st in plan.update:
            peer = dp.device.peers[st.public_key]
            was_off = peer.persistent_keepalive == 0
            psk = st.preshared_key or bytes(32)
            peer.handshake.preshared_key = psk
            peer.persistent_keepalive = float(st.persistent_keepalive)
            peer.config = replace(
                peer.config,
                preshared_key=st.preshared_key,
                persistent_keepalive=st.persistent_keepalive,
                endpoint=st.endpoint or peer.config.endpoint,
            )
            if st.endpoint is not None:
                peer.path = LinkPath(UDP, st.endpoint)
            known = peers.specs.get(st.public_key)
            if known is not None:
                known.preshared_key = st.preshared_key
                known.persistent_keepalive = st.persistent_keepalive
                known.endpoint = str(LinkPath(UDP, st.endpoint)) if st.endpoint else known.endpoint
            if sorted(map(str, peers.allowed.get(st.public_key, []))) != sorted(
                map(str, st.allowed_ips)
            ):
                await peers.set_allowed(st.public_key, st.allowed_ips)
            log.info("peer %s updated through the wg API", short(st.public_key))
            if was_off and st.persistent_keepalive and peer.path is not None:
                dp.device.send_keepalive(peer, now=now)
        for key in plan.remove:  # last: a prefix that moved away keeps its route
            await peers.remove(key)
        dp.flush()


async def serve(
    path: Path, api: Uapi, *, task_status: Any = trio.TASK_STATUS_IGNORED
) -> None:
    if not await _clear_stale(path):  # the node runs on; only the stock tools cannot reach it
        log.warning("%s answers already (another WireGuard?); no wg API for this node", path)
        task_status.started()
        return
    listener = await unix_server.bind(path, backlog=MAX_CONNECTIONS)
    task_status.started()

    async def connection(stream: trio.SocketStream) -> None:
        try:
            async with stream:
                await _requests(stream, api)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            log.debug("wg connection dropped: %s", exc)
        except Exception as exc:  # a bug here must end this connection, not the daemon
            log.error("wg connection failed: %s: %.60s", type(exc).__name__, exc)
            log.debug("wg connection failed", exc_info=True)

    async def refuse(stream: trio.SocketStream) -> None:
        await _last_word(stream, uapi.format_errno(errno.EBUSY))

    loop = unix_server.accept_loop(
        listener,
        name="wg socket",
        max_connections=MAX_CONNECTIONS,
        serve=connection,
        refuse=refuse,
        log=log,
    )
    await unix_server.serve_until_cancelled(path, listener, loop)


async def _clear_stale(path: Path) -> bool:
    """Remove a socket nobody answers on (a killed run's); False if a live one is there."""
    if not (path.exists() or path.is_symlink()):
        return True
    probe = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with trio.move_on_after(_GRACE):
            await probe.connect(str(path))
            return False
    except OSError:
        pass  # refused, or not a socket: stale
    finally:
        probe.close()
    path.unlink()
    return True


async def _last_word(stream: trio.SocketStream, answer: bytes) -> None:
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        with trio.move_on_after(_GRACE):
            await stream.send_all(answer)
    await stream.aclose()


async def _requests(stream: trio.SocketStream, api: Uapi) -> None:
    buf = bytearray()
    while True:
        if not buf:
            with trio.move_on_after(IDLE_TIMEOUT):
                buf += await stream.receive_some(uapi.MAX_REQUEST + 1)
            if not buf:
                return  # idle too long, or the client is done
        deadline = trio.current_time() + REQUEST_DEADLINE
        end = uapi.frame_end(buf)
        with trio.move_on_at(deadline):
            while (end := uapi.frame_end(buf)) is None and len(buf) <= uapi.MAX_REQUEST:
                chunk = await stream.receive_some(uapi.MAX_REQUEST + 1 - len(buf))
                if not chunk:
                    return  # hung up halfway through a request
                buf += chunk
        if end is None or end > uapi.MAX_REQUEST:
            code = errno.ETIMEDOUT if len(buf) <= uapi.MAX_REQUEST else errno.EMSGSIZE
            log.warning("wg request refused: %s", os.strerror(code))
            with trio.move_on_after(_GRACE):
                await stream.send_all(uapi.format_errno(code))
            return  # the stream cannot be resynchronised
        raw = bytes(buf[:end])
        del buf[:end]
        answer = await api.handle(raw)
        with trio.move_on_at(max(deadline, trio.current_time() + _GRACE)) as sending:
            await stream.send_all(answer)
        if sending.cancelled_caught:
            return
        if not raw.startswith((b"get=1\n", b"set=1\n")):
            return  # an unknown operation: wireguard-go closes too
