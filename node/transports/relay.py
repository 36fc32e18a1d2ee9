"""The relayed paths' transport: our end-to-end datagrams wrapped in relay frames.

A relayed path is `Path("relay", ("VIA.END", 0))` (node/core/relay.py `address`): the
datagram is for the end END and goes through the neighbour VIA. Sending one wraps it in
a relay frame (protocol/control/relay.py), seals the frame inside our link with VIA
(`Device.encrypt`, which starts a handshake with VIA if there is no session yet) and
queues the result on VIA's own path, whatever transport that is. Nothing is read here:
frames for us arrive inside VIA's link, and the data path hands them to the relay
component (node/relay.py), which gives their datagrams back to the link on this path.

`overhead` is what a relayed path takes from the inner MTU (node/core/mtu.py reads it):
the frame's headers and the link's framing around the end-to-end datagram.
"""

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from tidewire.node.core import relay as core
from tidewire.protocol.control.relay import OVERHEAD
from tidewire.protocol.types import RELAY, Endpoint

if TYPE_CHECKING:
    from tidewire.node.datapath import DataPath
    from tidewire.node.transports.base import Receiver

CACHE = 1024  # parsed addresses kept (one per relayed path in use)


class RelayTransport:
    name = RELAY
    overhead = OVERHEAD

    def __init__(self, drops: Counter[str]) -> None:
        self.drops = drops
        self.datapath: DataPath | None = None
        self.relay: core.Relay | None = None
        self._keys: dict[str, tuple[bytes, bytes] | None] = {}
        # the relays our own datagrams went through, and who is told of a new one (the
        # daemon: a relay we chose and that asks for receipts is paid, node/relay_pay.py)
        self.opened: set[bytes] = set()
        self.on_open: Callable[[], None] | None = None

    def attach(self, datapath: "DataPath", relay: core.Relay) -> None:
        self.datapath, self.relay = datapath, relay

    def _send(self, data: bytes, address: Endpoint, *, now_send: bool, ecn: int = 0) -> None:
        dp, relay = self.datapath, self.relay
        if dp is None or relay is None:
            self.drops["relay_not_ready"] += 1
            return
        host = address[0]
        if host in self._keys:
            keys = self._keys[host]
        else:
            if len(self._keys) >= CACHE:
                self._keys.clear()
            keys = self._keys[host] = core.keys_of(host)
        if keys is None:
            self.drops["relay_bad_address"] += 1
            return
        via, end = keys
        peer = dp.device.peers.get(via)
        if peer is None:
            self.drops["relay_unknown_via"] += 1
            return
        if via not in self.opened:
            if len(self.opened) >= CACHE:
                self.opened.clear()
            self.opened.add(via)
            if self.on_open is not None:
                self.on_open()
        acct = dp.accountant  # a relay we pay bills this datagram: count it as it does
        if acct is not None and not acct.relayed_via(via, len(data), up=True):
            self.drops["relay_provider_refused"] += 1
            return
        out = dp.device.encrypt(peer, relay.wrap(via, end, data), now=trio.current_time())
        path = peer.path
        if out is None or path is None:
            return  # staged until a session with the relay is up
        if path.transport == RELAY:
            self.drops["relay_via_relayed"] += 1  # a relay is reached directly, never nested
            return
        transport = dp.transports.get(path.transport)
        if transport is None:
            self.drops["send_no_transport"] += 1
        elif now_send:
            transport.send_now(out, path.address)
        else:
            transport.add(out, path.address, ecn)

    def add(self, data: bytes, address: Endpoint, ecn: int = 0) -> None:
        self._send(data, address, now_send=False, ecn=ecn)

    def send_now(self, data: bytes, address: Endpoint) -> None:
        self._send(data, address, now_send=True)

    def flush(self) -> None:
        """Nothing of our own: what `add` queued sits on the neighbours' transports."""

    async def serve(self, receiver: "Receiver") -> None:
        await trio.sleep_forever()  # frames for us come inside the links, not from a socket

    def close(self) -> None:
        self._keys.clear()
