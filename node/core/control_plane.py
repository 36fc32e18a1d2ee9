"""The in-tunnel control channel: control messages to registered handlers by type.

Control messages are UDP datagrams between the two peers' overlay addresses (port
7474), carried inside the authenticated link (overlay.py). The data path hands every
decrypted packet addressed to our overlay address here instead of to the TUN; this
module checks that it really is a control datagram from that peer's own overlay
address, decodes it (protocol/control/channel.py) and calls the handler registered for
its message type. Accounting registers hello, invoice, receipt and refusal; probes,
route adverts and node records register theirs the same way. A handler decides
whether the message fits the peer's role and raises RemoteProtocolError if it does
not; every refusal is a counted drop (`drops`), never an exception out of here.

Components with per-peer state hook `on_established` (a session with a native peer
is up: gossip pulls then) and `on_forget` (the peer is gone).

Sending goes the other way: `send(peer_key, message)` encodes, wraps it in the overlay
UDP packet and passes it to `transmit` (the data path seals and sends it at once).
"""

from collections import Counter
from collections.abc import Callable
from typing import Any

from tidewire.node.core import overlay
from tidewire.protocol.control import channel
from tidewire.protocol.errors import RemoteProtocolError

# handler(peer_key, message, now=...)
Handler = Callable[..., None]


class ControlPlane:
    def __init__(self, *, public_key: bytes, transmit: Callable[[bytes, bytes], None]) -> None:
        self.local_overlay = overlay.overlay_address(public_key)
        self.transmit = transmit  # (peer key, IPv6 packet to seal and send)
        self.handlers: dict[type[Any], Handler] = {}
        self.drops: Counter[str] = Counter()
        self._peer_overlay: dict[bytes, bytes] = {}  # a BLAKE2s per peer, computed once
        self.on_established: list[Handler] = []  # hook(peer_key, now=...)
        self.on_forget: list[Callable[[bytes], None]] = []

    def register(self, kind: type[Any], handler: Handler) -> None:
        if kind in self.handlers:
            raise ValueError(f"a handler for {kind.__name__} is already registered")
        self.handlers[kind] = handler

    def is_control(self, packet: bytes) -> bool:
        """Is this decrypted IPv6 packet addressed to our overlay address? (Cheap: the data
        path asks for every inner IPv6 packet.)"""
        return len(packet) >= 48 and packet[24:40] == self.local_overlay

    def overlay_of(self, peer_key: bytes) -> bytes:
        addr = self._peer_overlay.get(peer_key)
        if addr is None:
            addr = self._peer_overlay[peer_key] = overlay.overlay_address(peer_key)
        return addr

    def forget(self, peer_key: bytes) -> None:
        self._peer_overlay.pop(peer_key, None)
        for hook in self.on_forget:
            hook(peer_key)

    def established(self, peer_key: bytes, *, now: float) -> None:
        """A handshake with a native peer completed (the data path says so)."""
        for hook in self.on_established:
            hook(peer_key, now=now)

    def receive(self, peer_key: bytes, packet: bytes, *, now: float) -> None:
        parsed = overlay.parse(packet, local=self.local_overlay)
        if parsed is None or parsed[0] != self.overlay_of(peer_key):
            self.drops["control_malformed"] += 1
            return
        try:
            msg = channel.decode(parsed[1])
            handler = self.handlers.get(type(msg))
            if handler is None:
                raise RemoteProtocolError("unexpected")
            handler(peer_key, msg, now=now)
        except RemoteProtocolError as exc:
            self.drops["control_" + exc.reason] += 1

    def packet(self, peer_key: bytes, msg: channel.Message) -> bytes:
        """The overlay IPv6/UDP packet that carries `msg` to a peer (still to be sealed)."""
        payload = channel.encode(msg)
        return overlay.build(self.local_overlay, self.overlay_of(peer_key), payload)

    def send(self, peer_key: bytes, msg: channel.Message) -> None:
        self.transmit(peer_key, self.packet(peer_key, msg))
