"""A transport keypair: one direction's key each way, the send counter, the replay window.

A peer holds up to three (previous, current, next) as wireguard-go does
(whitepaper section 5.4.6); the AEAD objects are built once per keypair so the
per-packet calls allocate nothing but their output.

`native` is the keypair's session in the native data plane (dataplane/, issue 17)
when the node runs it: built from the same keys by the factory the device was given.
It then owns the replay window, so both paths see one window, and `rx_counts` reads
the window's loss count (replay.py) from whichever holds it.
"""

from collections.abc import Callable
from typing import Any

from . import aead
from .handshake import SessionKeys
from .replay import ReplayWindow


class Keypair:
    __slots__ = (
        "created",
        "is_initiator",
        "local_index",
        "native",
        "peer_key",
        "recv_aead",
        "remote_index",
        "replay",
        "send_aead",
        "send_counter",
    )

    def __init__(
        self,
        keys: SessionKeys,
        *,
        peer_key: bytes,
        now: float,
        native: Callable[[SessionKeys], Any] | None = None,
    ) -> None:
        self.send_aead = aead.ChaCha20Poly1305(keys.send)
        self.recv_aead = aead.ChaCha20Poly1305(keys.recv)
        self.send_counter = 0
        self.replay = ReplayWindow()
        self.created = now
        self.is_initiator = keys.is_initiator
        self.local_index = keys.local_index
        self.remote_index = keys.remote_index
        self.peer_key = peer_key
        self.native = native(keys) if native is not None else None

    def rx_counts(self) -> tuple[int, int]:
        """(datagrams lost, datagrams accepted) by this keypair's window (replay.py)."""
        if self.native is not None:
            lost, accepted = self.native.rx_counts
            return int(lost), int(accepted)
        return self.replay.lost, self.replay.accepted

    def __repr__(self) -> str:
        role = "initiator" if self.is_initiator else "responder"
        return f"<Keypair {role} local={self.local_index:#x} created={self.created}>"
