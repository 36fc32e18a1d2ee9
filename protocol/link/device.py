"""The device: one local static key, its peers, the index table, and the verbs the shell calls.

    receive_datagram(data, path, *, now, under_load) -> (peer, plaintext) | None
    receive_transport_batch(datagrams, path, *, now) -> [(peer, plaintext) | None]
    encrypt(peer, packet, *, now)                    -> datagram | None (staged)
    datagrams_to_send()                              -> [(datagram, path)]
    next_event()                                     -> Event | None
    get_timer() / handle_timer(*, now)

The receive path turns every refusal into a counted drop (`drops[reason]`):
nothing from the network raises out of it, and nothing but the counters changes
before a message has authenticated. Handshake logic and the timer rules follow
wireguard-go (device/send.go, receive.go, timers.go, peer.go); a responder
matches an initiation's profile by which mac1 label verifies.
"""

from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from ..errors import LocalProtocolError, RemoteProtocolError
from ..types import Path, RandomSource
from .constants import (
    KEEPALIVE_TIMEOUT,
    MAX_EVENTS,
    MAX_OUTBOX,
    MESSAGE_COOKIE_REPLY,
    MESSAGE_INITIATION,
    MESSAGE_RESPONSE,
    MESSAGE_TRANSPORT,
    REJECT_AFTER_MESSAGES,
    REKEY_AFTER_MESSAGES,
    REKEY_AFTER_TIME,
    REKEY_TIMEOUT,
    REKEY_TIMEOUT_JITTER_MAX_MS,
    ZERO_KEYS_AFTER,
)
from .cookie import CookieChecker
from .crypto import clamp, dh, nonce, public_key
from .events import (
    Event,
    HandshakeGaveUp,
    KeysZeroed,
    TimestampSent,
)
from .handshake import SessionKeys
from .handshake_receive import HandshakeReceiver
from .keypair import Keypair
from .load import HandshakeLoad
from .messages import (
    HEADER,
    message_type,
    padded_length,
)
from .peer import Peer, PeerConfig
from .profile import PROFILES, Mode
from .ratelimiter import RateLimiter
from .tai64n import next_stamp
from .timers import Expired, TimerQueue, expire
from .transport_receive import TransportReceiver


class Device(TransportReceiver, HandshakeReceiver):
    def __init__(
        self,
        *,
        private_key: bytes,
        rng: RandomSource,
        wall_offset: float = 0.0,
        mtu: int | None = None,
    ) -> None:
        if len(private_key) != 32:
            raise LocalProtocolError("private_key: a key is 32 bytes")
        self.private_key = private_key
        self.public_key = public_key(private_key)
        self.rng = rng
        self.wall_offset = wall_offset
        self.mtu = mtu
        self.peers: dict[bytes, Peer] = {}
        self.index: dict[int, Peer | Keypair] = {}
        self.checkers = {mode: CookieChecker(p, self.public_key) for mode, p in PROFILES.items()}
        self.drops: Counter[str] = Counter()
        self.counters: Counter[str] = Counter()
        self._outbox: deque[tuple[bytes, Path]] = deque()
        self._events: deque[Event] = deque()
        self.timers = TimerQueue()
        self.load = HandshakeLoad()
        # admission of a peer whose initiation authenticated: (peer, now) -> may it in?
        # (a provider's capacity, node/core/capacity.py); None admits every peer
        self.admit: Callable[[Peer, float], bool] | None = None
        # open admission: (public key, now) -> a peer made for an authenticated native
        # initiation from an unknown key, or None to refuse it; None refuses every stranger
        self.stranger: Callable[[bytes, float], Peer | None] | None = None
        # under load: one bucket per source for the Diffie-Hellman, one for cookie replies
        self.ratelimiter = RateLimiter()
        self.cookie_ratelimiter = RateLimiter()
        # the native data plane's session factory (node/dataplane.py): keypairs made while
        # it is set carry a native session that seals batches and opens with its window
        self.native: Callable[[SessionKeys], Any] | None = None

    # -- configuration ------------------------------------------------------

    def add_peer(self, config: PeerConfig) -> Peer:
        if config.public_key in self.peers:
            raise LocalProtocolError("public_key: this peer is already configured")
        if config.public_key == self.public_key:
            raise LocalProtocolError("public_key: a peer cannot have this device's own key")
        try:
            dh(self.private_key, config.public_key)
        except RemoteProtocolError:  # RFC 7748 section 6.1: X25519 with it gives all zeros
            raise LocalProtocolError(
                "public_key: a low-order point that no real key has (X25519 gives all zeros)"
            ) from None
        peer = Peer(config, local_private=self.private_key, local_public=self.public_key)
        peer.rearmed = self.timers.rearmed
        self.peers[config.public_key] = peer
        return peer

    def remove_peer(self, public_key: bytes) -> None:
        peer = self.peers.pop(public_key, None)
        if peer is None:
            raise LocalProtocolError("public_key: no such peer")
        peer.zero(self.index)

    def cut_off(self, public_key: bytes) -> None:
        """Stop talking to a peer without forgetting it (a client past its credit): every key
        erased, staged packets and timers cleared, persistent keepalives off. It can still
        handshake again; what it may then send is for the caller to decide."""
        peer = self.peers.get(public_key)
        if peer is None:
            raise LocalProtocolError("public_key: no such peer")
        peer.zero(self.index)
        peer.persistent_keepalive = 0
        peer.staged.clear()
        peer.clear_timers()

    # -- outputs ------------------------------------------------------------

    def datagrams_to_send(self) -> list[tuple[bytes, Path]]:
        out = list(self._outbox)
        self._outbox.clear()
        return out

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def _send(self, data: bytes, path: Path) -> None:
        if len(self._outbox) >= MAX_OUTBOX:
            self.drops["outbox_full"] += 1
            return
        self._outbox.append((data, path))

    def emit(self, event: Event) -> None:
        if len(self._events) >= MAX_EVENTS:
            self._events.popleft()
            self.counters["events_lost"] += 1
        self._events.append(event)

    def _new_index(self) -> int:
        while True:
            idx = int.from_bytes(self.rng(4), "little")
            if idx and idx not in self.index:
                return idx

    # -- sending ------------------------------------------------------------

    def encrypt(self, peer: Peer, packet: bytes, *, now: float) -> bytes | None:
        """Seal one inner packet for `peer`; stage it and start a handshake if no session yet."""
        kp = peer.usable_keypair(now=now) if not peer.staged else None
        if kp is None:
            if not peer.stage(packet):
                self.drops["staged_overflow"] += 1
            self._send_staged(peer, now=now)
            return None
        return self._seal(peer, kp, packet, now=now)

    def encrypt_batch(self, peer: Peer, packets: list[bytes], *, now: float) -> list[bytes | None]:
        """Seal a batch of inner packets for `peer` in order, one result per packet (None:
        staged, as `encrypt`): in one native call when its session is native and
        established, else packet by packet as `encrypt`."""
        kp = peer.usable_keypair(now=now) if not peer.staged else None
        native = kp.native if kp is not None else None
        if native is None or native.send_counter + len(packets) > REJECT_AFTER_MESSAGES:
            return [self.encrypt(peer, p, now=now) for p in packets]
        assert kp is not None
        # the native session's counter is the one counter (its send thread takes from it too)
        start = native.take_counters(len(packets))
        out: list[bytes | None] = native.seal_batch(packets, counter=start, mtu=self.mtu)
        kp.send_counter = start + len(packets)
        self._sent(peer, kp, sum(len(d) for d in out if d), any(packets), now=now)
        return out

    def _seal(self, peer: Peer, kp: Keypair, packet: bytes, *, now: float) -> bytes:
        counter = kp.send_counter if kp.native is None else kp.native.take_counters(1)
        kp.send_counter = counter + 1
        length = len(packet)
        padded = padded_length(length, self.mtu)
        if padded != length:
            packet = packet + bytes(padded - length)
        out = HEADER.pack(MESSAGE_TRANSPORT, kp.remote_index, counter) + kp.send_aead.encrypt(
            nonce(counter), packet, None
        )
        self._sent(peer, kp, len(out), length > 0, now=now)
        return out

    def _sent(self, peer: Peer, kp: Keypair, size: int, data: bool, *, now: float) -> None:
        """The timers and counters after sealing (the same for one packet or a batch)."""
        peer.tx_bytes += size
        peer.on_any_authenticated_packet_traversal(now=now)
        peer.on_any_authenticated_packet_sent()
        if data:
            peer.on_data_sent(now=now)
        # keepKeyFreshSending
        if kp.send_counter > REKEY_AFTER_MESSAGES or (
            kp.is_initiator and now - kp.created > REKEY_AFTER_TIME
        ):
            self.send_initiation(peer, now=now, retry=False)

    def _send_staged(self, peer: Peer, *, now: float) -> None:
        kp = peer.usable_keypair(now=now)
        if kp is None:
            self.send_initiation(peer, now=now, retry=False)
            return
        if peer.path is None:
            return
        while peer.staged and peer.usable_keypair(now=now) is kp:
            self._send(self._seal(peer, kp, peer.staged.popleft(), now=now), peer.path)

    def send_keepalive(self, peer: Peer, *, now: float) -> None:
        if not peer.staged:
            peer.staged.append(b"")
        self._send_staged(peer, now=now)

    def initiate(self, peer: Peer, *, now: float) -> None:
        """Start a handshake now (rate limited to one per 5 s, as wireguard-go)."""
        self.send_initiation(peer, now=now, retry=False)

    def resend_initiation(self, peer: Peer, path: Path) -> bool:
        """Send the peer's latest initiation again, as it was, on another path (a path set
        racing its candidates); False if there is none or a session already exists. The
        responder takes whichever copy comes first and refuses the rest as replays."""
        msg = peer.last_initiation
        if msg is None or peer.current is not None:
            return False
        self.counters["initiations_raced"] += 1
        self._send(msg, path)
        return True

    def send_initiation(self, peer: Peer, *, now: float, retry: bool) -> None:
        if not retry:
            peer.handshake_attempts = 0
        last = peer.handshake.last_sent_initiation
        if last is not None and now - last < REKEY_TIMEOUT:
            return
        if peer.path is None:
            self.counters["initiation_no_endpoint"] += 1
            return
        peer.handshake.last_sent_initiation = now
        old = peer.handshake.local_index
        if old and self.index.get(old) is peer:
            del self.index[old]
        idx = self._new_index()
        ts = next_stamp(now + self.wall_offset, peer.last_sent_timestamp)
        peer.last_sent_timestamp = ts
        msg = peer.handshake.create_initiation(
            ephemeral_private=clamp(self.rng(32)), local_index=idx, timestamp=ts
        )
        peer.cookie.add_macs(msg, now=now)
        self.index[idx] = peer
        self.emit(TimestampSent(peer.public_key, ts))
        self.counters["initiations_sent"] += 1
        peer.last_initiation = bytes(msg)
        self._send(peer.last_initiation, peer.path)
        peer.on_any_authenticated_packet_traversal(now=now)
        peer.on_any_authenticated_packet_sent()
        jitter_ms = int.from_bytes(self.rng(2), "little") % REKEY_TIMEOUT_JITTER_MAX_MS
        peer.on_handshake_initiated(now=now, jitter=jitter_ms / 1000)

    # -- receiving ----------------------------------------------------------

    def receive_datagram(
        self, data: bytes, path: Path, *, now: float, under_load: bool = False
    ) -> tuple[Peer, bytes] | None:
        """Process one datagram. Returns (peer, inner packet) for data; None otherwise.

        Never raises for anything the network can send: refusals are counted in
        `drops` by reason. Handshake messages count towards the device's load (load.py);
        `under_load` forces it (tests and benchmarks).
        """
        try:
            kind = message_type(data)
            if kind == MESSAGE_TRANSPORT:
                return self._receive_transport(data, path, now=now)
            if kind == MESSAGE_INITIATION:
                loaded = self.load.count(now=now) or under_load
                self._receive_initiation(data, path, now=now, under_load=loaded)
            elif kind == MESSAGE_RESPONSE:
                loaded = self.load.count(now=now) or under_load
                self._receive_response(data, path, now=now, under_load=loaded)
            elif kind == MESSAGE_COOKIE_REPLY:
                self._receive_cookie_reply(data, now=now)
            else:
                raise RemoteProtocolError("unknown_type")
        except RemoteProtocolError as exc:
            self.drops[exc.reason] += 1
        return None

    # -- timers -------------------------------------------------------------

    def get_timer(self) -> float | None:
        """The earliest deadline over all peers (monotonic seconds), or None."""
        return self.timers.earliest(self.peers)

    def handle_timer(self, *, now: float) -> None:
        for peer in self.timers.pop_due(self.peers, now=now):
            self._fire(peer, now=now)
            deadline = peer.next_deadline()
            if deadline is not None:
                peer.arm(deadline)

    def _fire(self, peer: Peer, *, now: float) -> None:
        """Carry out what the peer's expired timers ask for (timers.expire)."""
        for action in expire(peer, now=now):
            if action is Expired.RETRANSMIT:
                self.send_initiation(peer, now=now, retry=True)
            elif action is Expired.GAVE_UP:
                peer.staged.clear()
                self.counters["handshakes_gave_up"] += 1
                self.emit(HandshakeGaveUp(peer.public_key))
                if peer.zero_keys is None:
                    peer.zero_keys = peer.arm(now + ZERO_KEYS_AFTER)
            elif action is Expired.KEEPALIVE:
                self.send_keepalive(peer, now=now)
                if peer.need_another_keepalive:
                    peer.need_another_keepalive = False
                    peer.send_keepalive = peer.arm(now + KEEPALIVE_TIMEOUT)
            elif action is Expired.NEW_HANDSHAKE:
                self.counters["handshakes_for_silence"] += 1
                self.send_initiation(peer, now=now, retry=False)
            elif action is Expired.ZERO_KEYS:
                peer.zero(self.index)
                self.emit(KeysZeroed(peer.public_key))
            elif action is Expired.PERSISTENT_KEEPALIVE:
                self.send_keepalive(peer, now=now)


__all__ = ["Device", "Mode", "Peer", "PeerConfig"]
