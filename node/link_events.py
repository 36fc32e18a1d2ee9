"""The data path's control sends and the link's outputs after a batch.

Control packets (overlay IPv6/UDP) are sealed for a peer and sent at once; path probes
and their replies go on the path they test, only inside a session. After each batch
`flush` takes the link's events (timestamps to persist, handshakes completed, paths
moved, peers given up, keys erased) and acts on or logs each, then the path sets'
probes, raced initiations and events (node/core/paths), then the link's datagrams,
and re-arms the one timer task. `DataPath` (datapath.py) is the class that uses this.

Sending a datagram can queue more: one on a relayed path is sealed inside the link to
the relay (node/transports/relay.py), which starts a handshake with the relay if there
is no session yet. So the outbox is drained until it is empty, however many rounds
that takes, within one bound for the whole flush (FLUSH_BOUND datagrams, counted as
`outbox_flush_bound` when reached; what is left goes with the next flush).
"""

from collections import Counter
from collections.abc import Callable
from logging import INFO, WARNING
from typing import TYPE_CHECKING

import trio

from tidewire.node.core.control_plane import ControlPlane
from tidewire.node.core.paths.manager import Paths
from tidewire.node.logs import PacketPathLog
from tidewire.node.timers import TimerTask
from tidewire.protocol.control.channel import Message
from tidewire.protocol.keys import short
from tidewire.protocol.link.constants import MAX_OUTBOX
from tidewire.protocol.link.device import Device
from tidewire.protocol.link.events import (
    HandshakeCompleted,
    HandshakeGaveUp,
    KeysZeroed,
    PathChanged,
    TimestampSent,
)
from tidewire.protocol.link.profile import Mode
from tidewire.protocol.types import Path

if TYPE_CHECKING:
    from tidewire.node.accounting import Accountant

# datagrams one flush sends at most, in any number of rounds: three full outboxes (a
# send that always queues another, a bug, must not hold the event loop for ever)
FLUSH_BOUND = 3 * MAX_OUTBOX


class LinkEvents:
    """Control sends and the link's outputs, mixed into `DataPath`, which sets these."""

    device: Device
    control: ControlPlane
    paths: Paths
    log: PacketPathLog
    timers: TimerTask
    drops: Counter[str]
    counters: Counter[str]
    accountant: "Accountant | None"
    persist_timestamp: Callable[[bytes, bytes], None]
    path_confirmed: Callable[[bytes, Path], None] | None

    def send(self, data: bytes, path: Path) -> None:
        raise NotImplementedError  # DataPath's: one sealed datagram on its transport

    def send_control(self, peer_key: bytes, packet: bytes) -> None:
        """Seal a control packet (overlay IPv6/UDP) for a peer and send it now."""
        peer = self.device.peers.get(peer_key)
        if peer is None:
            return
        out = self.device.encrypt(peer, packet, now=trio.current_time())
        if out is not None and peer.path is not None:
            self.send(out, peer.path)

    def send_on(self, peer_key: bytes, msg: Message, path: Path) -> None:
        """Seal a control message (a path probe or its reply) and send it on `path`, not
        the peer's current one; only inside a session (a probe never starts a handshake)."""
        peer = self.device.peers.get(peer_key)
        now = trio.current_time()
        if peer is None or peer.staged or peer.usable_keypair(now=now) is None:
            self.drops["probe_no_session"] += 1
            return
        out = self.device.encrypt(peer, self.control.packet(peer_key, msg), now=now)
        if out is not None:
            self.send(out, path)

    def race(self, peer_key: bytes, path: Path) -> None:
        peer = self.device.peers.get(peer_key)
        if peer is not None:
            self.device.resend_initiation(peer, path)

    def flush_paths(self, *, now: float) -> None:
        """The path sets' probes, replies, raced initiations and events."""
        paths = self.paths
        paths.flush(send=self.send_on, initiate=self.race)
        say = self.log.log
        while (event := paths.next_event()) is not None:
            key, kind, path, reason = event
            if kind == "switched":
                say(INFO, "path", key, "peer %s now on %s: %s", short(key), path, reason, now=now)
            elif kind == "learned":
                say(INFO, "path", key, "peer %s: learned path %s", short(key), path, now=now)
            elif kind == "confirmed" and path is not None and self.path_confirmed is not None:
                self.path_confirmed(key, path)

    def flush(self) -> None:
        dev = self.device
        now = trio.current_time()
        say = self.log.log
        while (event := dev.next_event()) is not None:
            key = event.public_key
            if isinstance(event, TimestampSent):
                self.persist_timestamp(key, event.timestamp)
                self.paths.initiation_sent(key, now=now)
            elif isinstance(event, HandshakeCompleted):
                if self.accountant is not None:
                    self.accountant.handshake_completed(key, now=now)
                peer = dev.peers.get(key)
                if peer is not None and peer.profile.mode is Mode.NATIVE:
                    self.control.established(key, now=now)
                how = "we initiated" if event.initiator else "they initiated"
                say(
                    INFO,
                    "handshake",
                    key,
                    "handshake with %s completed (%s)",
                    short(key),
                    how,
                    now=now,
                )
            elif isinstance(event, PathChanged):
                say(INFO, "path", key, "peer %s now at %s", short(key), event.path, now=now)
            elif isinstance(event, HandshakeGaveUp):
                say(
                    WARNING,
                    "gave_up",
                    key,
                    "peer %s: no handshake response after 90 s; giving up for now",
                    short(key),
                    now=now,
                )
            elif isinstance(event, KeysZeroed):
                say(
                    INFO,
                    "zeroed",
                    key,
                    "peer %s: keys erased after 540 s without a new session",
                    short(key),
                    now=now,
                )
        self.flush_paths(now=now)
        self.flush_outbox()
        self.timers.rearm()

    def flush_outbox(self) -> None:
        """The link's datagrams, until its outbox is empty (a send may queue more: a
        relayed one, a handshake with the relay) or FLUSH_BOUND went out."""
        dev = self.device
        sent = 0
        while out := dev.datagrams_to_send():
            for data, path in out:
                self.send(data, path)
            sent += len(out)
            if sent >= FLUSH_BOUND:
                self.counters["outbox_flush_bound"] += 1
                return
