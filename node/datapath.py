"""The packet path between the TUN device and the UDP sockets.

Each reader task waits for readiness once, then drains a batch without
blocking and calls the synchronous core per packet: no `await` per packet.
After each batch, the core's events are handled (timestamps persisted first),
then its queued datagrams are sent, and the timer task's sleep is shortened if
the core now has an earlier deadline. Every refusal is counted by reason in `drops`.
"""

import logging
import os
import socket
from collections import Counter
from collections.abc import Callable

import trio

from tidewire.node.accounting import Accountant
from tidewire.node.core import overlay
from tidewire.node.core.exit_policy import ExitPolicy
from tidewire.node.core.gro import VNET_HDR_LEN, coalesce
from tidewire.node.core.gso import Malformed, split
from tidewire.node.core.packet import inspect
from tidewire.node.core.routing.allowed_ips import AllowedIPs
from tidewire.node.ticker import Ticker
from tidewire.node.transports.udp import BatchSender
from tidewire.node.transports.udp import receive as receive_coalesced
from tidewire.protocol.keys import short
from tidewire.protocol.link.device import Device
from tidewire.protocol.link.events import (
    EndpointChanged,
    HandshakeCompleted,
    HandshakeGaveUp,
    KeysZeroed,
    TimestampSent,
)
from tidewire.protocol.link.peer import Peer
from tidewire.protocol.types import Endpoint

log = logging.getLogger("tidewire.node")

BATCH = 256
TUN_WRITE_BATCH = 128  # inner packets held for coalescing: bounds the memory of one batch
LOAD_WINDOW = 1.0
LOAD_THRESHOLD = 128  # handshake messages per second before cookies are demanded


class DataPath:
    def __init__(
        self,
        *,
        device: Device,
        tun_fd: int,
        sockets: dict[int, socket.socket],
        policy: ExitPolicy | None,
        persist_timestamp: Callable[[bytes, bytes], None],
    ) -> None:
        self.device = device
        self.tun_fd = tun_fd
        self.sockets = sockets  # by address family
        self.policy = policy
        self.persist_timestamp = persist_timestamp
        self.routes: AllowedIPs[Peer] = AllowedIPs()
        self.accountant: Accountant | None = None
        self.tun_gro = False  # the TUN carries virtio_net_hdr: reads strip it, writes coalesce
        self.tun_tso = False  # reads may be TCP super-packets or unfinished checksums
        self.udp_gro = False  # the sockets may hand over several datagrams per receive
        self.tun_out: list[bytes] = []
        self.drops: Counter[str] = Counter()
        self.counters: Counter[str] = Counter()
        self.batch = BatchSender(sockets, self.drops)
        self.ticker = Ticker()
        self._timer_scope: trio.CancelScope | None = None
        # a receive buffer per reader, reused: a fresh 64 KiB object per read, cut down
        # to the packet's size, fragments the heap and grows the daemon's memory
        self._tun_buffer = memoryview(bytearray(VNET_HDR_LEN + 65536))
        self._load_window_start = 0.0
        self._load_count = 0
        self._under_load_until = 0.0

    # -- outbound: TUN -> peer ----------------------------------------------

    async def tun_reader(self) -> None:
        fd, view, tso = self.tun_fd, self._tun_buffer, self.tun_tso
        skip = VNET_HDR_LEN if self.tun_gro else 0
        while True:
            await trio.lowlevel.wait_readable(fd)
            now = trio.current_time()
            for _ in range(BATCH):
                try:
                    n = os.readv(fd, [view])
                except BlockingIOError:
                    break
                if not tso:
                    self.outbound(bytes(view[skip:n]), now=now)
                    continue
                try:
                    packets = split(view[:n])
                except Malformed as exc:
                    self.drops[exc.reason] += 1  # one bad frame; its neighbours go on
                    continue
                if len(packets) > 1:
                    self.counters["tun_super_packets"] += 1
                for packet in packets:
                    self.outbound(packet, now=now)
            self.after_batch()

    def outbound(self, packet: bytes, *, now: float) -> None:
        inner = inspect(packet)
        if inner is None:
            self.drops["tun_malformed"] += 1
            return
        peer = (
            self.routes.lookup_v4(inner.dst)
            if inner.version == 4
            else self.routes.lookup_v6(inner.dst)
        )
        if peer is None:
            self.drops["tun_no_route"] += 1
            return
        acct = self.accountant
        if acct is not None and not acct.outbound(peer.public_key, len(packet)):
            return
        out = self.device.encrypt(peer, packet, now=now)
        if out is not None and peer.endpoint is not None:
            self.batch.add(out, peer.endpoint)  # sent after the batch, with UDP GSO where it can

    def send(self, data: bytes, endpoint: Endpoint) -> None:
        """Send one datagram now (handshakes, control messages, the core's outbox)."""
        self.batch.send_now(data, endpoint)

    # -- inbound: socket -> TUN ---------------------------------------------

    async def udp_reader(self, sock: socket.socket) -> None:
        view = memoryview(bytearray(65536))
        while True:
            await trio.lowlevel.wait_readable(sock)
            now = trio.current_time()
            gro = self.udp_gro
            delivered = False
            for _ in range(BATCH):
                try:
                    if gro:
                        datagrams, endpoint = receive_coalesced(sock, view)
                    else:
                        n, addr = sock.recvfrom_into(view)
                        datagrams, endpoint = [bytes(view[:n])], (addr[0], addr[1])
                except BlockingIOError:
                    break
                except OSError:
                    self.drops["recv_error"] += 1  # e.g. ICMP errors reported on the socket
                    continue
                for data in datagrams:
                    under_load = False
                    if data[:1] in (b"\x01", b"\x02"):
                        under_load = self._handshake_load(now)
                    res = self.device.receive_datagram(
                        data, endpoint, now=now, under_load=under_load
                    )
                    if res is not None:
                        self.inbound(res[0], res[1], now=now)
                        delivered = True
            self.after_batch(data=delivered)

    def _handshake_load(self, now: float) -> bool:
        if now - self._load_window_start > LOAD_WINDOW:
            self._load_window_start, self._load_count = now, 0
        self._load_count += 1
        if self._load_count > LOAD_THRESHOLD:
            self._under_load_until = now + LOAD_WINDOW
        return now < self._under_load_until

    def inbound(self, peer: Peer, plaintext: bytes, *, now: float) -> None:
        inner = inspect(plaintext)
        if inner is None:
            self.drops["inner_malformed"] += 1
            return
        acct = self.accountant
        if acct is not None and inner.version == 6 and acct.is_control(plaintext):
            acct.on_control(peer.public_key, plaintext[: inner.length], now=now)
            return
        owner = (
            self.routes.lookup_v4(inner.src)
            if inner.version == 4
            else self.routes.lookup_v6(inner.src)
        )
        if owner is not peer:
            self.drops["inner_source_not_allowed"] += 1
            return
        if self.policy is not None:
            reason = self.policy.check(inner)
            if reason is not None:
                self.drops["exit_" + reason] += 1
                return
        if acct is not None and not acct.inbound(peer.public_key, inner.length):
            return
        packet = plaintext[: inner.length] if inner.length != len(plaintext) else plaintext
        if not self.tun_gro:
            self._write_tun(packet)
            return
        self.tun_out.append(packet)
        if len(self.tun_out) >= TUN_WRITE_BATCH:
            self.flush_tun()

    # -- timers and the core's outputs ----------------------------------------

    async def timer_task(self) -> None:
        """Sleep until the core's earliest deadline, fire what is due, repeat.

        Other tasks never wake this one: after their work, `flush` only moves the
        sleep's deadline earlier when the core's deadline moved earlier, which costs
        no task switch on the packet path. A deadline that moved later just makes
        one early, harmless wake-up.
        """
        while True:
            with trio.CancelScope() as scope:
                self._timer_scope = scope
                self._rearm()
                await trio.sleep_forever()
            self._timer_scope = None
            self.device.handle_timer(now=trio.current_time())
            self.flush()

    def _rearm(self) -> None:
        scope = self._timer_scope
        if scope is None:
            return
        deadline = self.device.get_timer()
        if deadline is not None and deadline < scope.deadline:
            scope.deadline = deadline

    def after_batch(self, *, data: bool = True) -> None:
        """After a batch of reads; `data` if inner packets moved (not only handshakes,
        keepalives or refused datagrams, which do not keep the ticker going)."""
        now = trio.current_time()
        if data:
            self.ticker.poke(now)
        self.batch.flush()
        if self.tun_out:
            self.flush_tun()
        if self.accountant is not None:
            self.accountant.after_batch(now=now)
        self.flush()

    def flush_tun(self) -> None:
        """Write the batch's inner packets, TCP runs coalesced into super-packets."""
        frames = coalesce(self.tun_out)
        self.tun_out = []
        for frame in frames:
            self._write_tun(frame)

    def _write_tun(self, frame: bytes) -> None:
        try:
            os.write(self.tun_fd, frame)
        except BlockingIOError:
            self.drops["tun_write_full"] += 1
        except OSError:
            self.drops["tun_write_failed"] += 1

    def send_control(self, peer_key: bytes, payload: bytes) -> None:
        """Send a control message to a peer's overlay address, inside the link."""
        peer = self.device.peers.get(peer_key)
        if peer is None or self.accountant is None:
            return
        packet = overlay.build(
            self.accountant.local_overlay, overlay.overlay_address(peer_key), payload
        )
        out = self.device.encrypt(peer, packet, now=trio.current_time())
        if out is not None and peer.endpoint is not None:
            self.send(out, peer.endpoint)

    def flush(self) -> None:
        dev = self.device
        while (event := dev.next_event()) is not None:
            if isinstance(event, TimestampSent):
                self.persist_timestamp(event.public_key, event.timestamp)
            elif isinstance(event, HandshakeCompleted):
                if self.accountant is not None:
                    self.accountant.handshake_completed(event.public_key, now=trio.current_time())
                log.info(
                    "handshake with %s completed (%s)",
                    short(event.public_key),
                    "we initiated" if event.initiator else "they initiated",
                )
            elif isinstance(event, EndpointChanged):
                log.info("peer %s now at %s:%d", short(event.public_key), *event.endpoint)
            elif isinstance(event, HandshakeGaveUp):
                log.warning(
                    "peer %s: no handshake response after 90 s; giving up for now",
                    short(event.public_key),
                )
            elif isinstance(event, KeysZeroed):
                log.info(
                    "peer %s: keys erased after 540 s without a new session",
                    short(event.public_key),
                )
        for data, endpoint in dev.datagrams_to_send():
            self.send(data, endpoint)
        self._rearm()
