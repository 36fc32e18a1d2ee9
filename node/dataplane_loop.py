"""The native threads' Trio side (issue 17): the per-packet loops for established
sessions run in threads of the native module without the GIL, from the UDP sockets to
the TUN (dataplane/src/rx*.rs, here) and from the TUN to the UDP sockets
(dataplane/src/tx*.rs, its shell in dataplane_send.py); this shell keeps them agreeing
with the link and takes back what they do not handle.

They run in place of the TUN reader and the UDP and masked transports' readers when
`eligible` says the node may: the native plane. [share] queues become the threads'
own (node/sharing.py's `to_threads`, dataplane/src/queue/held.rs): the send thread
queues before it seals, the receive thread before the TUN; a quota is a gate both
take every packet from (node/quota_gate.py, synced at each poll).
Sessions on a masked path run in the threads too: they unmask and mask the transport
datagrams themselves (dataplane/src/mask.rs) with the keys the masked transport has
(`native_masks`, installed again when its `generation` changes). An exit's
policy runs in the receive thread too (dataplane/src/policy.rs, installed again when its
`generation` changes). For the receive thread:

- **Installing.** Every `POLL` seconds, and after each hand-back batch, `reconcile`
  gives the thread each peer's current keypair (its native session, the peer's UDP
  endpoint and how long the keypair may still be used, less a margin) and the prefix
  table of cryptokey routing; keypairs that are gone, aged or moved are removed. A
  provider's client is installed with its credit gate (node/accounting_gate.py): the
  threads take its packets from its window and hold them back once it is over; what
  they passed is charged to its session at each poll, and the gates are brought up to
  date after it (and after each receipt). A provider we use is, until we refuse it:
  before accounting answers its invoice, the threads' counters are polled (`refresh`),
  so what we check the invoice against includes every datagram that came before it.
- **Hand-backs.** The thread writes the eventfd when it queued items. Unopened ones
  ("raw": handshakes, unknown indices, another endpoint...) go through the
  transport's `deliver`, as its own reader would hand them over (a masked socket's
  datagram the thread did not unmask, "wire", through the skin's opener); opened ones
  (keepalives, control packets, SYNs, fragments...) through the link's
  `receive_opened` and then `DataPath.inbound`.
- **Counters.** What each peer received natively is polled: the link's timer hooks run
  once per poll for it (authenticated traffic, data received, the initiator's
  last-minute handshake), its rx bytes and accounting's inner bytes are added; native
  drops join the link's or the data path's counters under the Python path's names, and
  hand-backs are counted per reason (`native_handback_*`).
"""

import contextlib
import logging
import os
from collections import Counter
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from tidewire.node.accounting import no_refresh
from tidewire.node.accounting_gate import CreditGates, credit_gate
from tidewire.node.core.roles import Role
from tidewire.node.dataplane_send import (
    MARGIN,
    Endpoint,
    NativeOutbound,
    count_drops,
    count_handbacks,
    native_endpoint,
)
from tidewire.node.quota_gate import QuotaGate
from tidewire.node.transports.masked import MaskedTransport
from tidewire.node.transports.udp import Shedding, UdpTransport
from tidewire.protocol.link.constants import (
    REJECT_AFTER_MESSAGES,
    REJECT_AFTER_TIME,
)
from tidewire.protocol.link.keypair import Keypair
from tidewire.protocol.link.peer import Peer
from tidewire.protocol.types import UDP, Path

if TYPE_CHECKING:
    from tidewire.node.datapath import DataPath
    from tidewire.node.sharing import Sharing

log = logging.getLogger("tidewire.node")

POLL = 0.05  # seconds between polls of the counters and reconciles
# what a session is installed with: its keypair, the peer's endpoint, a client's gate
Wanted = tuple[Keypair, Endpoint, Any]
TAKE = 256  # hand-backs per round


def eligible(dp: "DataPath", sharing: "Sharing | None" = None) -> str | None:
    """None if the receive thread may run on this node, else why not (one clause)."""
    if dp.dataplane != "native":
        return "the data plane is python"
    module = dp.native_module
    if not hasattr(module, "Outbound"):
        return "the native module has no send and receive threads"
    if dp.quota is not None and not hasattr(module.Outbound, "set_quota"):
        return "a [share] quota is on (this native module does not count one)"
    queues = not dp._in_direct or not dp._out_direct
    if queues and (sharing is None or not hasattr(module, "ThreadShare")):
        return "[share] queues are on (this native module has no queues for its threads)"
    return None


def readers(
    dp: "DataPath", udp: UdpTransport, masked: MaskedTransport, sharing: "Sharing | None" = None
) -> list[Callable[[], Awaitable[None]]]:
    """What reads the TUN and the UDP and masked sockets: the native threads where
    `eligible`, else the data path's TUN reader and the transports' own readers; the
    data plane's `why` in status says which. With the threads, `sharing`'s queues
    become theirs."""
    why = eligible(dp, sharing)
    if why is None:
        dp.dataplane_why += "; the native send and receive threads run the TUN, UDP and masked"
        dp.native_threads = True
        inbound = NativeInbound(dp, udp, masked)
        if sharing is not None and hasattr(dp.native_module, "ThreadShare"):
            sharing.to_threads(dp.native_module.ThreadShare, inbound.set_share, inbound._id)
        return [inbound.serve]
    if dp.dataplane == "native":
        dp.dataplane_why += f"; TUN and UDP are read in Python: {why}"
    return [dp.tun_reader, partial(udp.serve, dp), partial(masked.serve, dp)]


def _gated(acct: Any, peer_key: bytes) -> bool:
    """Does accounting count this peer's packets one by one, on the Python path? A
    provider we refused does (its traffic is dropped), and a provider's client where
    the threads have no credit gates. A client with a gate does not (the threads take
    its packets from its window, `credit_gate`), nor a provider we use: its invoices
    are checked against counters polled just before (`refresh`; polled only once a
    poll, they were up to a poll late, and a client refused honest invoices)."""
    if acct is None:
        return False
    role = acct.roles.get(peer_key)
    if role is Role.PROVIDER:
        used = acct.used.get(peer_key)
        return used is None or used.refused
    return role is Role.CLIENT and acct.gates is None


class NativeInbound:
    """The receive thread over `udp`'s sockets (and `masked`'s), writing to the TUN."""

    def __init__(
        self, dp: "DataPath", udp: UdpTransport, masked: MaskedTransport | None = None
    ) -> None:
        self.dp, self.udp, self.masked = dp, udp, masked
        self.thread: Any = None
        self.send = NativeOutbound(dp, udp, masked)
        self.installed: dict[int, Wanted] = {}  # receiver index -> what
        self.ids: dict[bytes, int] = {}  # peer key -> the thread's peer id
        self.peers_by_id: dict[int, Peer] = {}
        self.routes: list[tuple[int, bytes, int, int]] = []
        self.handed_back: Counter[str] = Counter()
        self.policy_generation: int | None = None  # the exit policy's, as installed
        self.masks_generation: int | None = None  # the masked transport's keys', as installed
        self.queues: tuple[Any, Any] = (None, None)  # [share]'s (outbound, inbound), set_share
        self.quota: QuotaGate | None = None  # [share]'s quota, once there was one

    def set_share(self, out_queue: Any, in_queue: Any) -> None:
        """[share]'s queues for the threads (ThreadShare or None each): now if they run,
        else when they start."""
        self.queues = (out_queue, in_queue)
        if self.thread is not None:
            self.thread.set_share(in_queue)
        if self.send.thread is not None:
            self.send.thread.set_share(out_queue)

    async def serve(self) -> None:
        dp = self.dp
        masked = [] if self.masked is None else list(self.masked.sockets.values())
        self.thread = thread = dp.native_module.Inbound(
            sockets=[s.fileno() for s in self.udp.sockets.values()],
            masked=[s.fileno() for s in masked],
            tun_fd=dp.tun_fd,
            tun_gro=dp.tun_gro,
            overlay=dp.control.local_overlay,
            limit=REJECT_AFTER_MESSAGES,
        )
        send = self.send.make()
        self.set_share(*self.queues)
        self._sync_quota()  # before a packet passes: none goes ungated or uncounted
        acct = dp.accountant
        if acct is not None:
            acct.refresh = self.refresh
            if hasattr(dp.native_module, "Credit"):
                acct.gates = CreditGates(acct.credits, dp.native_module.Credit)
        self.reconcile(now=trio.current_time())
        if self.masked is not None:  # a listener registered gets its key in at once
            self.masked.changed = self._install_masks
        thread.start()
        send.start()
        log.info(
            "data plane: native threads on the TUN, %d UDP and %d masked sockets",
            len(self.udp.sockets),
            len(masked),
        )
        efd = thread.event_fd
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._send_handbacks)
                while True:
                    with trio.move_on_after(POLL):
                        await trio.lowlevel.wait_readable(efd)
                    with contextlib.suppress(BlockingIOError):
                        os.read(efd, 8)  # reset the eventfd
                    now = trio.current_time()
                    moved = self.take(now=now)
                    moved |= self.poll(now=now)
                    moved |= self.send.poll(self.peers_by_id, now=now)
                    self.reconcile(now=now)
                    dp.after_batch(data=moved)
        finally:
            if self.masked is not None:
                self.masked.changed = None
            send.stop()
            thread.stop()
            self.refresh()  # what the threads counted last
            if acct is not None:
                acct.refresh = no_refresh
                acct.gates = None

    async def _send_handbacks(self) -> None:
        """The send thread's hand-backs, as soon as it signals them."""
        efd = self.send.thread.event_fd
        while True:
            await trio.lowlevel.wait_readable(efd)
            with contextlib.suppress(BlockingIOError):
                os.read(efd, 8)
            now = trio.current_time()
            moved = self.send.take(self.peers_by_id, now=now)
            # a client's gate may have crossed its wake mark: charge and invoice now
            self.poll(now=now)
            self.send.poll(self.peers_by_id, now=now)
            self.dp.after_batch(data=moved)

    # -- hand-backs -----------------------------------------------------------

    def take(self, *, now: float) -> bool:
        """Whatever the thread handed back, through the Python path; True if data moved."""
        dp, masked = self.dp, self.masked
        moved = False
        shedding = Shedding()
        opener = None
        for kind, _reason, index, data, plain, host, port, ecn, via in self.thread.take(TAKE):
            path = Path(via, (host, port))
            if kind != "opened":
                transport = self.udp if via == UDP else masked
                assert transport is not None  # the thread reads masked sockets only with it
                if kind == "wire" and opener is None:
                    opener = transport.opener()
                open_ = opener if kind == "wire" else None
                moved |= transport.deliver(dp, [data], path, ecn, open_, shedding, now=now)
                continue
            moved |= dp.receive_opened(index, data, plain, path, now=now, ecn=ecn)
        if dp.paths.unsettled:
            dp.paths.settle(now=now)
        return moved

    # -- counters -------------------------------------------------------------

    def refresh(self) -> None:
        """Both threads' counters now (accounting, before it checks an invoice)."""
        now = trio.current_time()
        self.poll(now=now)
        self.send.poll(self.peers_by_id, now=now)

    def poll(self, *, now: float) -> bool:
        """The native counters into the link's timers, accounting and the registry."""
        dp, thread = self.dp, self.thread
        device, acct = dp.device, dp.accountant
        moved = False
        for peer_id, packets, data, wire, inner in thread.stats():
            peer = self.peers_by_id.get(peer_id)
            if peer is None or device.peers.get(peer.public_key) is not peer:
                continue
            device.keep_key_fresh_receiving(peer, now=now)
            hook, path = peer.path_hook, peer.path
            if hook is not None and path is not None:
                hook(path, now)  # the active path answered (only its datagrams come here)
            peer.on_any_authenticated_packet_traversal(now=now)
            peer.on_any_authenticated_packet_received()
            peer.rx_bytes += wire
            dp.counters["native_rx_datagrams"] += packets
            if data:
                peer.on_data_received(now=now)
            if inner:
                moved = True
                dp.counters["native_rx_bytes"] += inner
                if acct is not None and not acct.native_inbound(peer.public_key, inner):
                    self._remove_peer(peer)  # e.g. a provider refused: Python's path now
        count_drops(dp, thread.drops())
        for event, n in thread.events():
            dp.counters[event] += n
        count_handbacks(dp, thread.handed_back(), self.handed_back, "native_handback_")
        self._sync_quota()
        if acct is not None and acct.gates is not None:
            acct.gates.sync()  # what the Python path counted, receipts, larger windows
        return moved

    def _sync_quota(self) -> None:
        """A [share] quota's gate (node/quota_gate.py) brought up to date, and put in the
        threads or taken out when a reload adds or removes the quota."""
        meter, gate = self.dp.quota, self.quota
        if meter is None and (gate is None or gate.meter is None):
            return
        if gate is None:
            gate = self.quota = QuotaGate(self.dp.native_module.Credit)
        had = gate.meter is not None
        gate.sync(meter)
        if had != (meter is not None):
            native = gate.gate if meter is not None else None
            self.thread.set_quota(native)
            self.send.thread.set_quota(native)

    # -- installing -----------------------------------------------------------

    def _id(self, peer: Peer) -> int:
        peer_id = self.ids.get(peer.public_key)
        if peer_id is None:
            peer_id = self.ids[peer.public_key] = len(self.ids) + 1
        self.peers_by_id[peer_id] = peer
        return peer_id

    def _wanted(self, peer: Peer, now: float) -> Wanted | None:
        kp = peer.current
        masked = self.masked is not None
        endpoint = native_endpoint(peer, kp, self._gated, masked=masked, now=now)
        if kp is None or endpoint is None:
            return None
        return kp, endpoint, credit_gate(self.dp.accountant, peer.public_key)

    def _gated(self, peer_key: bytes) -> bool:
        return _gated(self.dp.accountant, peer_key)

    def _install_policy(self) -> None:
        """The exit policy into the thread when it changed (a reload, the router's
        addresses): the thread checks what the Python path's `policy.check` would."""
        policy = self.dp.policy
        generation = None if policy is None else policy.generation
        if generation == self.policy_generation:
            return
        if policy is None:
            self.thread.clear_policy()
        else:
            self.thread.set_policy(*policy.native_tables())
        self.policy_generation = generation

    def _install_masks(self) -> None:
        """The masked transport's keys into the thread when they changed (a listener
        registered or forgotten)."""
        masked = self.masked
        if masked is None or masked.generation == self.masks_generation:
            return
        self.thread.set_masks(*masked.native_masks())
        self.masks_generation = masked.generation

    def reconcile(self, *, now: float) -> None:
        """Make the thread's sessions, prefix table, exit policy and masked keys those
        of the link now."""
        self._install_policy()
        self._install_masks()
        thread, installed = self.thread, self.installed
        wanted: dict[int, Wanted] = {}
        for peer in self.dp.device.peers.values():
            w = self._wanted(peer, now)
            if w is not None:
                wanted[w[0].local_index] = w
        for index in [i for i in installed if wanted.get(i) != installed[i]]:
            thread.remove(index)
            del installed[index]
        for index, (kp, (host, port, masked), gate) in wanted.items():
            if index in installed:
                continue
            peer = self.dp.device.peers[kp.peer_key]
            ttl = REJECT_AFTER_TIME - MARGIN - (now - kp.created)
            peer_id = self._id(peer)
            thread.install(
                kp.native,
                peer=peer_id,
                host=host,
                port=port,
                ttl=ttl,
                credit=gate,
                masked=masked,
                key=peer.public_key,
            )
            installed[index] = wanted[index]
        peers = [(self._id(p), p) for p in self.dp.device.peers.values()]
        self.send.reconcile(peers, self._gated, now=now)
        routes = self._routes()
        if routes != self.routes:
            thread.set_routes(routes)
            self.send.thread.set_routes(routes)
            self.routes = routes

    def _routes(self) -> list[tuple[int, bytes, int, int]]:
        out = []
        for version, family in ((4, self.dp.routes.v4), (6, self.dp.routes.v6)):
            for length, table in family.by_length.items():
                for net, peer in table.items():
                    out.append((version, net.to_bytes(16, "big"), length, self._id(peer)))
        out.sort()
        return out

    def _remove_peer(self, peer: Peer) -> None:
        for index in [i for i, w in self.installed.items() if w[0].peer_key == peer.public_key]:
            self.thread.remove(index)
            del self.installed[index]
