"""Receiving transport data messages (whitepaper section 5.4.6; wireguard-go
device/receive.go, RoutineDecryption and RoutineSequentialReceiver).

A part of `Device` (device.py). A datagram is checked before it is opened (length, the
receiver index, the keypair's age and the counter limit), opened with the keypair's
replay window, and only then does anything change: the next keypair is promoted, an
initiator near the end of its keypair's life starts the last-minute handshake, the path
moves (roaming, or the peer's path set decides), the timers run.

`receive_transport_batch` takes the datagrams of one socket read (a UDP GRO buffer:
one sender, usually one keypair): a run of datagrams to the same keypair with a native
session (dataplane/, issue 17) is opened in one native call, then each is handled in
order as `receive_datagram` would. The results, drops and their reasons are the same
as datagram by datagram (tests/unit/test_dataplane_diff.py holds them to it): opening
touches nothing but the keypair's own window, and nothing done for an authenticated
datagram changes which keypair an index names within the run.
"""

from collections import Counter

from ..errors import RemoteProtocolError
from ..types import Path
from . import aead
from .constants import (
    KEEPALIVE_SIZE,
    KEEPALIVE_TIMEOUT,
    REJECT_AFTER_MESSAGES,
    REJECT_AFTER_TIME,
    REKEY_TIMEOUT,
    TRANSPORT_HEADER_SIZE,
)
from .crypto import nonce
from .events import Event, HandshakeCompleted, PathChanged
from .keypair import Keypair
from .messages import HEADER
from .peer import Peer

_LAST_MINUTE = REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT  # 165 s
_TRANSPORT_WORD = b"\x04\x00\x00\x00"  # type 4 and the three reserved bytes (messages.py)

Received = tuple[Peer, bytes] | None


class TransportReceiver:
    # the device's state this part works on (device.py sets it up)
    peers: dict[bytes, Peer]
    index: dict[int, Peer | Keypair]
    drops: Counter[str]
    counters: Counter[str]

    def receive_datagram(
        self, data: bytes, path: Path, *, now: float, under_load: bool = False
    ) -> Received:
        raise NotImplementedError

    def send_initiation(self, peer: Peer, *, now: float, retry: bool) -> None:
        raise NotImplementedError

    def _send_staged(self, peer: Peer, *, now: float) -> None:
        raise NotImplementedError

    def emit(self, event: Event) -> None:
        raise NotImplementedError

    def receive_transport_batch(
        self, datagrams: list[bytes], path: Path, *, now: float
    ) -> list[Received]:
        """The datagrams of one read from `path`, in order: one result each, as
        `receive_datagram` gives (never raises; refusals are counted drops)."""
        out: list[Received] = []
        i, n = 0, len(datagrams)
        while i < n:
            data = datagrams[i]
            j = i + 1
            if len(data) >= KEEPALIVE_SIZE and data[:4] == _TRANSPORT_WORD:
                receiver = data[4:8]
                while j < n and _same_keypair(datagrams[j], receiver):
                    j += 1
            if j - i > 1:
                out.extend(self._receive_run(datagrams[i:j], path, now=now))
            else:
                out.append(self.receive_datagram(data, path, now=now))
            i = j
        return out

    def _receive_run(self, run: list[bytes], path: Path, *, now: float) -> list[Received]:
        """Transport datagrams to one receiver index: one native call for the keypair's
        session, or datagram by datagram where it has none."""
        kp = self.index.get(int.from_bytes(run[0][4:8], "little"))
        if not isinstance(kp, Keypair) or kp.native is None:
            return [self.receive_datagram(d, path, now=now) for d in run]
        results: list[Received] = [None] * len(run)
        expired = now - kp.created >= REJECT_AFTER_TIME
        to_open, positions = [], []
        for k, data in enumerate(run):
            if expired or int.from_bytes(data[8:16], "little") >= REJECT_AFTER_MESSAGES:
                self.drops["transport_expired_keypair"] += 1
                continue
            to_open.append(data)
            positions.append(k)
        if not to_open:
            return results
        opened = kp.native.open_batch(to_open, limit=REJECT_AFTER_MESSAGES)
        for k, plaintext in zip(positions, opened, strict=True):
            if isinstance(plaintext, str):
                self.drops[plaintext] += 1
            else:
                results[k] = self._authenticated(kp, run[k], plaintext, path, now=now)
        return results

    def receive_opened(
        self, index: int, data: bytes, plaintext: bytes, path: Path, *, now: float
    ) -> Received:
        """A datagram the native receive thread opened with the keypair of `index` (its
        window has moved) and handed back: what an authenticated one does from here."""
        kp = self.index.get(index)
        if not isinstance(kp, Keypair):  # the keypair went while the datagram waited
            self.drops["transport_unknown_index"] += 1
            return None
        return self._authenticated(kp, data, plaintext, path, now=now)

    def _receive_transport(self, data: bytes, path: Path, *, now: float) -> Received:
        if len(data) < KEEPALIVE_SIZE:
            raise RemoteProtocolError("transport_short")
        _, receiver, counter = HEADER.unpack_from(data)
        kp = self.index.get(receiver)
        if not isinstance(kp, Keypair):
            raise RemoteProtocolError("transport_unknown_index")
        if now - kp.created >= REJECT_AFTER_TIME or counter >= REJECT_AFTER_MESSAGES:
            raise RemoteProtocolError("transport_expired_keypair")
        if kp.native is not None:  # the same checks, in Rust, with the native window
            opened = kp.native.open_batch([data], limit=REJECT_AFTER_MESSAGES)[0]
            if isinstance(opened, str):
                raise RemoteProtocolError(opened)
            plaintext: bytes = opened
        else:
            if not kp.replay.check(counter, REJECT_AFTER_MESSAGES):
                raise RemoteProtocolError("transport_replay")
            try:
                plaintext = kp.recv_aead.decrypt(
                    nonce(counter), memoryview(data)[TRANSPORT_HEADER_SIZE:], None
                )
            except aead.BAD_TAG:
                raise RemoteProtocolError("transport_decrypt") from None
            kp.replay.accept(counter, REJECT_AFTER_MESSAGES)
        return self._authenticated(kp, data, plaintext, path, now=now)

    def _authenticated(
        self, kp: Keypair, data: bytes, plaintext: bytes, path: Path, *, now: float
    ) -> Received:
        """What an authenticated transport datagram does (it changes state from here on)."""
        peer = self.peers[kp.peer_key]
        if kp is peer.next:
            peer.promote_next(self.index)
            peer.on_handshake_complete(now=now)
            self.emit(HandshakeCompleted(peer.public_key, initiator=False))
            if peer.staged:
                self._send_staged(peer, now=now)
        self.keep_key_fresh_receiving(peer, now=now)
        self._update_path(peer, path, now=now)
        peer.on_any_authenticated_packet_traversal(now=now)
        peer.on_any_authenticated_packet_received()
        peer.rx_bytes += len(data)
        if not plaintext:
            self.counters["keepalives_received"] += 1
            return None
        peer.on_data_received(now=now)
        return peer, plaintext

    def keep_key_fresh_receiving(self, peer: Peer, *, now: float) -> None:
        """An initiator receiving on a keypair near the end of its life starts the
        last-minute handshake, once (wireguard-go's keepKeyFreshReceiving)."""
        cur = peer.current
        if (
            cur is not None
            and cur.is_initiator
            and not peer.sent_last_minute_handshake
            and now - cur.created > _LAST_MINUTE
        ):
            peer.sent_last_minute_handshake = True
            self.send_initiation(peer, now=now, retry=False)

    def _update_path(self, peer: Peer, path: Path, *, now: float) -> None:
        """Roaming (WireGuard's endpoint update), only ever on an authenticated packet: the
        peer's datagrams go back the way its latest authenticated one came. A peer with a
        path hook (a native peer's path set, node/core/paths) lets the hook decide."""
        hook = peer.path_hook
        if hook is not None:
            hook(path, now)
            return
        if peer.path != path:
            peer.path = path
            self.emit(PathChanged(peer.public_key, path))


def _same_keypair(data: bytes, receiver: bytes) -> bool:
    """Is `data` a transport datagram to the same receiver index?"""
    return len(data) >= KEEPALIVE_SIZE and data[:4] == _TRANSPORT_WORD and data[4:8] == receiver
