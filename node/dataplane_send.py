"""The native send thread's Trio side (issue 17): the per-packet loop from the TUN to
the UDP sockets for established sessions runs in a thread of the native module
(dataplane/src/tx*.rs) without the GIL; node/dataplane_loop.py runs this beside the
receive thread, from the same eligibility and the same peer ids and prefix table.

- **Installing.** `reconcile` gives the thread a sender per peer with a usable current
  keypair, nothing staged and a UDP or masked path: the keypair's native session (the
  send counter is the session's, shared with Python's own sealing), the endpoint, the
  time left (180 s less a margin, less its age) and the largest inner packet the path
  carries, for a provider's client its credit gate (node/accounting_gate.py), and on a
  masked path the skin's key and padding sizes (the thread masks, pads and sends on the
  masked transport's socket). A peer whose outbound packets accounting counts one by
  one is never installed.
- **Hand-backs** are inner packets for `DataPath.outbound`, as the TUN reader would
  give them: no session yet, too big for the path, SYNs, fragments...
- **Counters.** Per peer, what was sent runs the link's send-side timer hooks once per
  poll (authenticated traffic sent, data sent, the initiator's rekey after 120 s), adds
  the tx bytes and accounting's outbound bytes; drops join the data path's counters
  (`count_drops`, which the receive thread's poll uses too).
"""

from collections import Counter
from typing import TYPE_CHECKING, Any

from tidewire.node.accounting_gate import HELD, NO_SESSION, credit_gate
from tidewire.node.quota_gate import QUOTA
from tidewire.protocol.link.constants import (
    REJECT_AFTER_TIME,
    REKEY_AFTER_MESSAGES,
    REKEY_AFTER_TIME,
)
from tidewire.protocol.link.keypair import Keypair
from tidewire.protocol.link.peer import Peer
from tidewire.protocol.types import MASKED, UDP

if TYPE_CHECKING:
    from tidewire.node.datapath import DataPath
    from tidewire.node.transports.masked import MaskedTransport
    from tidewire.node.transports.udp import UdpTransport

TAKE = 256
MARGIN = 1.0  # seconds before REJECT_AFTER_TIME a keypair leaves the threads


# where the threads carry a session: (host, port, on the masked transport)
Endpoint = tuple[str, int, bool]


def native_endpoint(
    peer: Peer, kp: Keypair | None, gated: Any, *, masked: bool, now: float
) -> Endpoint | None:
    """Where the threads may carry `kp`'s datagrams for `peer` (both directions): its UDP
    endpoint, or its masked one if the threads read the masked sockets (`masked`), if
    `kp` has a native session with more than MARGIN left and accounting does not count
    the peer packet by packet (`gated`); else None."""
    path = peer.path
    if kp is None or kp.native is None or path is None:
        return None
    if path.transport != UDP and not (masked and path.transport == MASKED):
        return None
    if now - kp.created >= REJECT_AFTER_TIME - MARGIN or gated(peer.public_key):
        return None
    address = path.address
    return str(address[0]), int(address[1]), path.transport == MASKED


def count_handbacks(
    dp: "DataPath", counts: list[tuple[str, int]], total: Counter[str], prefix: str
) -> None:
    """A thread's hand-backs by reason into the registry: "full" (the queue was full)
    is a drop, the rest are events named `prefix` + reason."""
    for reason, n in counts:
        total[reason] += n
        if reason == "full":
            dp.drops["native_handback_full"] += n
        else:
            dp.counters[prefix + reason] += n


def count_drops(dp: "DataPath", counts: list[tuple[str, int]]) -> None:
    """A thread's drops under the Python path's names: the link's (`transport_*`) to the
    device, a credit gate's to the accountant (its `credit_exhausted`), the quota's to
    the data path and the quota's refusals, the rest to the data path."""
    acct = dp.accountant
    for reason, n in counts:
        if reason in (HELD, NO_SESSION) and acct is not None:
            acct.held_back(n, reason)
        elif reason == QUOTA:
            dp.drops[reason] += n
            if dp.quota is not None:
                dp.quota.refused += n  # as its own `open` counts them
        elif reason.startswith("transport_"):
            dp.device.drops[reason] += n
        else:
            dp.drops[reason] += n


def _fds(transport: "UdpTransport | None") -> tuple[int, int]:
    """A transport's IPv4 and IPv6 socket descriptors (-1: none)."""
    import socket

    sockets = {} if transport is None else transport.sockets
    s4, s6 = sockets.get(socket.AF_INET), sockets.get(socket.AF_INET6)
    return (s4.fileno() if s4 is not None else -1, s6.fileno() if s6 is not None else -1)


# what a sender is installed with: keypair, endpoint, carry, gate, the skin's (key, sizes)
Installed = tuple[Keypair, Endpoint, int, Any, Any]


class NativeOutbound:
    """The send thread over the data path's TUN and `udp`'s sockets (and `masked`'s)."""

    def __init__(
        self, dp: "DataPath", udp: "UdpTransport", masked: "MaskedTransport | None" = None
    ) -> None:
        self.dp, self.udp, self.masked = dp, udp, masked
        self.thread: Any = None
        self.installed: dict[int, Installed] = {}  # by peer id
        self.handed_back: Counter[str] = Counter()

    def make(self) -> Any:
        dp, udp = self.dp, self.udp
        v4, v6 = _fds(udp)
        masked_v4, masked_v6 = _fds(self.masked)
        self.thread = dp.native_module.Outbound(
            tun_fd=dp.tun_fd,
            vnet=dp.tun_gro,
            tso=dp.tun_tso,
            v4=v4,
            v6=v6,
            masked_v4=masked_v4,
            masked_v6=masked_v6,
            gso=udp.batch.gso,
            ecn=udp.batch.ecn_send,
            limit=REKEY_AFTER_MESSAGES,
            mtu=dp.device.mtu,
        )
        return self.thread

    def take(self, peers_by_id: dict[int, Peer], *, now: float) -> bool:
        """The handed-back packets through the Python path, and the Python path's own
        that the [share] queue let go (node/thread_slots.py) sent as they are; True if
        any."""
        packets = self.thread.take(TAKE)
        dp = self.dp
        for packet in packets:
            dp.outbound(packet, now=now)
        shaped = self.thread.take_shaped(TAKE)
        for peer_id, packet in shaped:
            peer = peers_by_id.get(peer_id)
            if peer is not None and dp.device.peers.get(peer.public_key) is peer:
                dp._send_packet(peer, packet, now)
            else:
                dp.drops["tun_no_route"] += 1  # the peer went while it waited
        return bool(packets) or bool(shaped)

    def poll(self, peers_by_id: dict[int, Peer], *, now: float) -> bool:
        dp, thread = self.dp, self.thread
        device, acct = dp.device, dp.accountant
        moved = False
        for peer_id, packets, wire, inner in thread.stats():
            peer = peers_by_id.get(peer_id)
            if peer is None or device.peers.get(peer.public_key) is not peer:
                continue
            moved = True
            peer.tx_bytes += wire
            peer.on_any_authenticated_packet_traversal(now=now)
            peer.on_any_authenticated_packet_sent()
            peer.on_data_sent(now=now)
            dp.counters["native_tx_datagrams"] += packets
            dp.counters["native_tx_bytes"] += inner
            kp = peer.current
            if kp is not None and kp.native is not None:
                kp.send_counter = kp.native.send_counter  # the mirror the link's checks read
                if kp.is_initiator and now - kp.created > REKEY_AFTER_TIME:
                    device.send_initiation(peer, now=now, retry=False)  # keepKeyFreshSending
            if acct is not None and not acct.native_outbound(peer.public_key, inner):
                self.remove(peer_id)
        count_drops(dp, thread.drops())
        for event, n in thread.events():
            dp.counters[event] += n
        count_handbacks(dp, thread.handed_back(), self.handed_back, "native_send_handback_")
        return moved

    def reconcile(self, peers: list[tuple[int, Peer]], gated: Any, *, now: float) -> None:
        """Make the thread's senders those of the link now (`gated`: accounting holds
        this peer's packets back one by one), a client's with its credit gate."""
        thread, installed, masked = self.thread, self.installed, self.masked
        wanted: dict[int, Installed] = {}
        for peer_id, peer in peers:
            kp = peer.usable_keypair(now=now) if not peer.staged else None
            endpoint = native_endpoint(peer, kp, gated, masked=masked is not None, now=now)
            if kp is None or endpoint is None:
                continue
            skin = None
            if endpoint[2]:
                assert masked is not None
                s = masked.skin_for((endpoint[0], endpoint[1]))
                if s is None:
                    continue  # no key for it: the Python path counts masked_no_key
                skin = (s.hp_key, s.sizes.ranges)
            gate = credit_gate(self.dp.accountant, peer.public_key)
            wanted[peer_id] = (kp, endpoint, self.dp._carry(peer), gate, skin)
        for peer_id in [i for i in installed if wanted.get(i) != installed[i]]:
            self.remove(peer_id)
        for peer_id, (kp, (host, port, _), carry, gate, skin) in wanted.items():
            if peer_id in installed:
                continue
            ttl = REJECT_AFTER_TIME - MARGIN - (now - kp.created)
            mask, sizes = skin if skin is not None else (None, ())
            thread.install(
                kp.native,
                peer=peer_id,
                host=host,
                port=port,
                ttl=ttl,
                carry=carry,
                credit=gate,
                mask=mask,
                sizes=list(sizes),
                key=kp.peer_key,
            )
            installed[peer_id] = wanted[peer_id]

    def remove(self, peer_id: int) -> None:
        self.thread.remove(peer_id)
        self.installed.pop(peer_id, None)
