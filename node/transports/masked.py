"""The masked transport: the `masked` skin (protocol/skins/masked.py) on its own UDP sockets.

It is the UDP transport (sockets, marks, GSO runs, GRO, the batched readers, handshake
shedding) with one step added each way: `wrap` before a datagram is queued or sent, and
`unwrap` before the reader hands it to the data path, so the link and the data path see
link datagrams and `Path("masked", address)` and nothing else changes for them.

Keys. The skin's key is always the listening node's public key, in both directions of
a path. A node keeps:
- `listeners`: remote address -> the skin of the listener there, registered when a peer
  with a masked endpoint is added (we dial it: its key wraps what we send and unwraps
  its replies);
- `own`: the skin of its own key, for everything else when it listens itself (clients
  that dialled us). A node that does not listen on masked:// opens an ephemeral socket
  for dialling and refuses any datagram from an address it did not register.

A datagram that unwraps under no key is counted (`masked_unwrap_failed`, or
`masked_decoys` for a decoy) and dropped: nothing ever answers it, so an active prober
hears nothing. Decoys: before the first initiation to a listener, `decoys` datagrams
(DECOYS by default) that the listener drops; they blur the first flight's count and
sizes (the canonical one-out, one-in exchange) for two small datagrams per listener and
run, and are never sent on a listener's replies.

The native threads (node/dataplane_loop.py) read and write these sockets themselves when
they run: they unmask and mask transport datagrams with the keys `native_masks` gives
them and hand back to `opener` whatever else comes (handshake wrappers, decoys, forgeries).
"""

import os
from collections import Counter
from collections.abc import Callable

from tidewire.node.transports.udp import UdpTransport
from tidewire.protocol.link.constants import MESSAGE_INITIATION
from tidewire.protocol.skins.masked import MaskedSkin
from tidewire.protocol.types import MASKED, Endpoint, RandomSource

DECOYS = 2  # per listener, before our first initiation to it (see the module comment)
_INITIATION = bytes((MESSAGE_INITIATION,))


class MaskedTransport(UdpTransport):
    """WireGuard datagrams under the masked skin, for native peers."""

    name = MASKED
    # A transport datagram keeps its size under the skin (its length rides in the header's
    # reserved bytes) and padding only reaches sizes of the largest range, which fit a
    # 1280-byte path: a full-size datagram is sent unpadded, so the path carries what
    # plain UDP carries (node/core/mtu.py)
    overhead = 0

    def __init__(
        self,
        drops: Counter[str],
        *,
        own_public: bytes,
        rng: RandomSource = os.urandom,
        decoys: int = DECOYS,
    ) -> None:
        super().__init__(drops)
        self.own = MaskedSkin(own_public)
        self.listening = False  # bound to a configured masked:// port: clients may dial us
        self.listeners: dict[Endpoint, MaskedSkin] = {}
        self._skins: dict[bytes, MaskedSkin] = {}  # by listener key: one skin per key
        self._greeted: set[Endpoint] = set()  # listeners that had their decoys
        self.rng = rng
        self.decoys = decoys
        self.generation = 0  # counts changes of the keys (the native threads install them)
        # the native receive thread's installer, called at each change: a listener's
        # first answer must find its key there (the thread drops what no key opens)
        self.changed: Callable[[], None] | None = None

    def listen(self, port: int, *, mark: int) -> int:
        """Bind the configured masked:// port: datagrams from unregistered addresses are
        clients of ours, keyed by our own public key."""
        self.listening = True
        self._changed()
        return self.bind(port, mark=mark)

    def register(self, address: Endpoint, listener_public: bytes) -> None:
        """Datagrams to and from `address` use the skin of the listener key there."""
        skin = self._skins.get(listener_public)
        if skin is None:
            skin = self._skins[listener_public] = MaskedSkin(listener_public)
        if self.listeners.get(address) is not skin:
            self.listeners[address] = skin
            self._changed()

    def forget(self, address: Endpoint) -> None:
        if self.listeners.pop(address, None) is not None:
            self._changed()
        self._greeted.discard(address)

    def _changed(self) -> None:
        self.generation += 1
        if self.changed is not None:
            self.changed()

    def skin_for(self, address: Endpoint) -> MaskedSkin | None:
        """The skin that wraps what we send to `address`, or None (no key for it)."""
        skin = self.listeners.get(address)
        return self.own if skin is None and self.listening else skin

    def native_masks(self) -> tuple[list[tuple[str, int, bytes]], bytes | None]:
        """The keys for the native receive thread's `set_masks`: (host, port, hp_key) per
        listener we dial, and our own hp_key if we listen."""
        listeners = [(str(a[0]), int(a[1]), s.hp_key) for a, s in self.listeners.items()]
        return listeners, self.own.hp_key if self.listening else None

    def _skin(self, address: Endpoint) -> MaskedSkin | None:
        skin = self.skin_for(address)
        if skin is None:
            self.drops["masked_no_key"] += 1
        return skin

    def add(self, data: bytes, address: Endpoint, ecn: int = 0) -> None:
        skin = self._skin(address)
        if skin is not None:
            self.batch.add(skin.wrap(data, rng=self.rng), address, ecn)

    def send_now(self, data: bytes, address: Endpoint) -> None:
        skin = self._skin(address)
        if skin is None:
            return
        first = data[:1] == _INITIATION and address not in self._greeted
        if first and address in self.listeners:
            self._greeted.add(address)
            for _ in range(self.decoys):
                self.batch.send_now(skin.decoy(rng=self.rng), address)
        self.batch.send_now(skin.wrap(data, rng=self.rng), address)

    def opener(self) -> Callable[[bytes, Endpoint], bytes | None]:
        listeners, drops = self.listeners, self.drops
        own = self.own

        def open_(data: bytes, address: Endpoint) -> bytes | None:
            skin = listeners.get(address)
            if skin is not None:
                out = skin.unwrap(data)
                if out is not None:
                    return out
            if self.listening:
                out = own.unwrap(data)
                if out is not None:
                    return out
                if own.is_decoy(data):
                    drops["masked_decoys"] += 1
                    return None
            elif skin is not None and skin.is_decoy(data):
                drops["masked_decoys"] += 1
                return None
            drops["masked_unwrap_failed"] += 1
            return None

        return open_
