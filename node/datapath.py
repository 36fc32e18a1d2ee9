"""The packet path between the TUN device and the transports.

Outbound (TUN -> peer): parse the inner header, look up the peer by destination
(cryptokey routing), ask accounting for credit, put the packet in the outbound queue
slot; what the queue delivers is sealed and handed to the peer's path's transport,
which sends it after the batch (UDP GSO where it can).

Inbound (transport -> TUN): the link opens the datagram; a packet to our overlay
address goes to the control plane (a relay frame to node/relay.py); otherwise the
inner source must belong to the peer (cryptokey routing), the exit policy must allow
it, accounting must have credit for it; then the inbound queue slot, then the TUN
(TCP runs coalesced).

ECN crosses the tunnel per RFC 6040 (node/core/ecn.py): the inner packet's ECN field
goes to its transport with the sealed datagram, for the outer header; an outer field of
ECT(1) or CE, as the transport read it, is combined into the inner packet, and an inner
Not-ECT packet under an outer CE is dropped (`ecn_ce_not_ect`). The MTU (node/core/
mtu.py): a TCP SYN through the tunnel either way has its MSS clamped to what the peer's
path carries, and an outbound packet larger than that gets an ICMP "too big" into the
TUN instead of a silent drop (`too_big`).

Each reader waits for readiness once, drains a batch without blocking and calls the
synchronous core per packet: no `await` per packet. After each batch, and after each
wake-up of the timer task (what a pacer lets go must not wait for the next read), the
queues release what may leave, the transports and the TUN are flushed, the core's
events are handled and its datagrams sent, and the one timer task is re-armed if a
deadline moved earlier. Every refusal is counted by reason in `drops`.
"""

import logging
import os
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from tidewire.node.accounting import Accountant
from tidewire.node.core.capacity import QuotaMeter
from tidewire.node.core.control_plane import ControlPlane
from tidewire.node.core.ecn import ECT_1, decapsulate
from tidewire.node.core.exit_policy import ExitPolicy
from tidewire.node.core.gro import VNET_HDR_LEN
from tidewire.node.core.mtu import DEFAULT_MTU, PathMtu, is_syn
from tidewire.node.core.packet import TCP, inspect
from tidewire.node.core.paths.manager import Paths
from tidewire.node.core.queues.base import Queue
from tidewire.node.core.queues.passthrough import PassThrough
from tidewire.node.core.routing.allowed_ips import AllowedIPs
from tidewire.node.core.ticker import Ticker
from tidewire.node.dataplane import Choice
from tidewire.node.link_events import LinkEvents
from tidewire.node.logs import PacketPathLog
from tidewire.node.timers import TimerTask
from tidewire.node.transports.base import Transport
from tidewire.node.tun_io import TUN_WRITE_BATCH, TunIO
from tidewire.protocol.control.channel import PathProbe, PathProbeReply
from tidewire.protocol.control.relay import is_frame as is_relay_frame
from tidewire.protocol.link.device import Device
from tidewire.protocol.link.peer import Peer
from tidewire.protocol.types import Path

if TYPE_CHECKING:
    from tidewire.node.relay import RelayNode

log = logging.getLogger("tidewire.node")


class DataPath(TunIO, LinkEvents):
    """The packet path; its TUN side is in tun_io.py, the link's outputs in link_events.py."""

    def __init__(
        self,
        *,
        device: Device,
        tun_fd: int,
        transports: dict[str, Transport],
        policy: ExitPolicy | None,
        persist_timestamp: Callable[[bytes, bytes], None],
    ) -> None:
        self.device = device
        self.tun_fd = tun_fd
        self.transports = transports  # by name, as in Path.transport
        self.policy = policy
        self.persist_timestamp = persist_timestamp
        self.routes: AllowedIPs[Peer] = AllowedIPs()
        self.accountant: Accountant | None = None
        self.control = ControlPlane(public_key=device.public_key, transmit=self.send_control)
        self.paths = Paths(rng=os.urandom)  # native peers' candidate paths (node/core/paths)
        self.control.register(PathProbe, self.paths.on_probe)
        self.control.register(PathProbeReply, self.paths.on_reply)
        self.relay: RelayNode | None = None  # relay frames (node/relay.py), set by the daemon
        # (peer key, path): the active path answered; the daemon remembers it per network
        self.path_confirmed: Callable[[bytes, Path], None] | None = None
        self.tun_gro = False  # the TUN carries virtio_net_hdr: reads strip it, writes coalesce
        self.tun_tso = False  # reads may be TCP super-packets or unfinished checksums
        self.tun_out: list[bytes] = []
        self.drops: Counter[str] = Counter()
        self.counters: Counter[str] = Counter()
        self.out_queue: Queue[tuple[Peer, bytes]] = PassThrough(self._seal)
        self.in_queue: Queue[bytes] = PassThrough(self._to_tun)
        # while a slot holds the pass-through queue, packets skip it (a call and a tuple
        # fewer per packet); `set_queues` turns that off for the slot it fills
        self._out_direct = self._in_direct = True
        self.quota: QuotaMeter | None = None  # a provider's [share] quota, all clients together
        self.mtu = PathMtu(
            mtu=device.mtu or DEFAULT_MTU,
            overheads={name: _datagram_overhead(t) for name, t in transports.items()},
            counters=self.counters,
        )
        self.ticker = Ticker()
        self.timers = TimerTask(after=self.after_timers)
        self.log = PacketPathLog(log)
        for component in (device, self.ticker, self.out_queue, self.in_queue, self.paths):
            self.timers.add(component)
        # a receive buffer per reader, reused: a fresh 64 KiB object per read, cut down
        # to the packet's size, fragments the heap and grows the daemon's memory
        self._tun_buffer = memoryview(bytearray(VNET_HDR_LEN + 65536))
        # the native data plane (node/dataplane.py): packets to seal, by peer, until the
        # batch ends, then one native call per peer (`Device.encrypt_batch`)
        self.dataplane = "python"
        self.dataplane_why = "not chosen yet"
        self._batch_seal = False
        self._to_seal: dict[Peer, list[bytes]] = {}
        self._native_split: Callable[[memoryview], list[bytes] | str] | None = None
        self._native_write: Callable[[int, list[bytes]], tuple[int, int, int]] | None = None
        self.native_module: Any = None  # with its receive thread, node/dataplane_loop.py
        self.native_threads = False  # do they read the TUN and the sockets (`readers`)?

    def use_dataplane(self, choice: Choice) -> None:
        """Run `choice`'s data plane: keypairs made from now on get its sessions."""
        self.dataplane, self.dataplane_why = choice.name, choice.why
        self.device.native = choice.factory
        self._batch_seal = choice.factory is not None
        self._native_split = choice.split
        self._native_write = choice.write_tun
        self.native_module = choice.module

    def set_queues(self, out_queue: "Queue[tuple[Peer, bytes]]", in_queue: "Queue[bytes]") -> None:
        """Put other queues in the two slots (the [share] settings), timers included."""
        self.timers.replace(self.out_queue, out_queue)
        self.timers.replace(self.in_queue, in_queue)
        self.out_queue, self.in_queue = out_queue, in_queue
        self._out_direct = isinstance(out_queue, PassThrough)
        self._in_direct = isinstance(in_queue, PassThrough)
        self.timers.rearm()

    # -- outbound: TUN -> peer ----------------------------------------------

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
        if inner.length > self.mtu.smallest:
            carry = self._carry(peer)
            if inner.length > carry:
                self._too_big(packet, carry, now)
                return
        if inner.proto == TCP and is_syn(packet):
            packet = self.mtu.clamp(packet, inner.version, self._carry(peer))
        if self._out_direct:
            self._send_packet(peer, packet, now)
        else:
            self.out_queue.enqueue((peer, packet), peer.public_key, len(packet), now)

    def _carry(self, peer: Peer) -> int:
        """The largest inner packet the peer's path carries."""
        path = peer.path
        return self.mtu.carry(None if path is None else path.transport)

    def _too_big(self, packet: bytes, carry: int, now: float) -> None:
        self.drops["too_big"] += 1
        answer = self.mtu.too_big(packet, carry, now=now)
        if answer is not None:
            self._to_tun(answer, now)

    def _seal(self, item: tuple[Peer, bytes], now: float) -> None:
        """What the outbound queue lets go."""
        self._send_packet(item[0], item[1], now)

    def _send_packet(self, peer: Peer, packet: bytes, now: float) -> None:
        """Count, seal and queue one packet on the peer's path. Counted here and not before
        the queue: a client signs for what it received, so a provider must not bill what
        its queue dropped."""
        quota = self.quota
        if quota is not None and not quota.open():
            self.drops["quota_exhausted"] += 1
            return
        acct = self.accountant
        if acct is not None and not acct.outbound(peer.public_key, len(packet)):
            return
        if quota is not None:  # taken once it is sure to go: a client pays for what it got
            quota.used += len(packet)
        if self._batch_seal:
            batch = self._to_seal.get(peer)
            if batch is None:
                self._to_seal[peer] = [packet]
            else:
                batch.append(packet)
            return
        self._queue_sealed(peer, [packet], [self.device.encrypt(peer, packet, now=now)])

    def _queue_sealed(
        self, peer: Peer, packets: list[bytes], datagrams: list[bytes | None]
    ) -> None:
        """Queue what sealed on the peer's path, each with its inner packet's ECN field;
        None is a packet the link staged."""
        path = peer.path
        if path is None:
            return
        transport = self.transports.get(path.transport)
        for packet, out in zip(packets, datagrams, strict=True):
            if out is None:
                continue
            if transport is None:
                self.drops["send_no_transport"] += 1
                continue
            b = packet[1]  # the ECN field for the outer header (RFC 6040 section 4.1)
            transport.add(out, path.address, b & 3 if packet[0] < 0x60 else (b >> 4) & 3)

    def seal_batches(self, *, now: float) -> None:
        """The batch's packets, sealed per peer in one native call each."""
        batches, self._to_seal = self._to_seal, {}
        for peer, packets in batches.items():
            self._queue_sealed(peer, packets, self.device.encrypt_batch(peer, packets, now=now))

    def send(self, data: bytes, path: Path) -> None:
        """Send one datagram now (handshakes, control messages, the core's outbox)."""
        transport = self.transports.get(path.transport)
        if transport is None:
            self.drops["send_no_transport"] += 1
            return
        transport.send_now(data, path.address)

    # -- inbound: transport -> TUN --------------------------------------------

    def receive(self, data: bytes, path: Path, *, now: float, ecn: int = 0) -> bool:
        """One datagram from a transport, with its outer ECN field; True if it carried
        inner data."""
        res = self.device.receive_datagram(data, path, now=now)
        moved = res is not None and self.inbound(res[0], res[1], now=now, ecn=ecn)
        if self.paths.unsettled:  # a follower's packet came on another path
            self.paths.settle(now=now)
        return moved

    def receive_batch(self, datagrams: list[bytes], path: Path, *, now: float, ecn: int) -> bool:
        """The transport datagrams of one socket read (one sender, one outer ECN field),
        opened in one native call per keypair (`Device.receive_transport_batch`)."""
        data = False
        for res in self.device.receive_transport_batch(datagrams, path, now=now):
            if res is not None and self.inbound(res[0], res[1], now=now, ecn=ecn):
                data = True
        if self.paths.unsettled:
            self.paths.settle(now=now)
        return data

    def receive_opened(
        self, index: int, data: bytes, plaintext: bytes, path: Path, *, now: float, ecn: int
    ) -> bool:
        """A datagram the native receive thread opened and handed back (node/
        dataplane_loop.py); True if it carried inner data."""
        res = self.device.receive_opened(index, data, plaintext, path, now=now)
        return res is not None and self.inbound(res[0], res[1], now=now, ecn=ecn)

    def shed(self, *, now: float) -> None:
        """A handshake message the transport shed: it counts towards the link's load."""
        self.device.load.count(now=now)

    def inbound(self, peer: Peer, plaintext: bytes, *, now: float, ecn: int = 0) -> bool:
        inner = inspect(plaintext)
        if inner is None:
            self.drops["inner_malformed"] += 1
            return False
        if inner.version == 6 and self.control.is_control(plaintext):
            if self.relay is not None and is_relay_frame(plaintext):  # before the decoder
                self.relay.receive(peer.public_key, plaintext[: inner.length], now=now)
                return True  # relayed datagrams are traffic: they keep the ticker going
            # control messages are not: probes and lookups alone must not keep it ticking
            self.control.receive(peer.public_key, plaintext[: inner.length], now=now)
            return False
        owner = (
            self.routes.lookup_v4(inner.src)
            if inner.version == 4
            else self.routes.lookup_v6(inner.src)
        )
        if owner is not peer:
            self.drops["inner_source_not_allowed"] += 1
            return False
        if self.policy is not None:
            reason = self.policy.check(inner)
            if reason is not None:
                self.drops["exit_" + reason] += 1
                return False
        if ecn & ECT_1:  # ECT(1) or CE outside: RFC 6040 section 4.2 may change the packet
            opened = decapsulate(ecn, plaintext)
            if opened is None:
                self.drops["ecn_ce_not_ect"] += 1
                return False
            if opened is not plaintext:
                self.counters["ecn_outer_applied"] += 1
                plaintext = bytes(opened)
        if inner.proto == TCP and is_syn(plaintext):
            plaintext = self.mtu.clamp(plaintext, inner.version, self._carry(peer))
        quota = self.quota
        if quota is not None and not quota.open():
            self.drops["quota_exhausted"] += 1
            return False
        acct = self.accountant
        if acct is not None and not acct.inbound(peer.public_key, inner.length):
            return False
        if quota is not None:
            quota.used += inner.length
        packet = plaintext[: inner.length] if inner.length != len(plaintext) else plaintext
        if not self._in_direct:
            self.in_queue.enqueue(packet, peer.public_key, inner.length, now)
        elif not self.tun_gro:  # _to_tun, inlined: this is the per-packet path
            self._write_tun(packet)
        else:
            self.tun_out.append(packet)
            if len(self.tun_out) >= TUN_WRITE_BATCH:
                self.flush_tun()
        return True

    # -- after a batch: the queues, the core's outputs, the timer -----------------

    def after_timers(self) -> None:
        """After the timer task's wake-up: what its components let go (a queue's paced
        packets, a relay's frames) is sealed and sent now, as after a batch of reads,
        not left in the transports' batches until the next read."""
        self.after_batch(data=False)

    def after_batch(self, *, data: bool = True) -> None:
        """After a batch of reads; `data` if inner packets moved (not only handshakes,
        keepalives or refused datagrams, which do not keep the ticker going)."""
        now = trio.current_time()
        if data:
            self.ticker.poke(now)
        if not self._out_direct:
            self.out_queue.release(now=now)
        if not self._in_direct:
            self.in_queue.release(now=now)
        if self._to_seal:
            self.seal_batches(now=now)
        for transport in self.transports.values():
            transport.flush()
        if self.tun_out:
            self.flush_tun()
        if self.accountant is not None:
            self.accountant.after_batch(now=now)
        self.flush()


def _datagram_overhead(transport: object) -> int:
    """What a transport's framing takes from the outer datagram. A stream skin frames
    whole inner packets on TCP (`max_inner` far above any MTU), so it takes nothing."""
    if hasattr(transport, "max_inner"):
        return 0
    return int(getattr(transport, "overhead", 0))
