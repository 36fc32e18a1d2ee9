"""Receiving handshake messages: initiations, responses and cookie replies (whitepaper
section 5.4; wireguard-go device/receive.go, RoutineHandshake).

A part of `Device` (device.py), apart because it is the one path a stranger can make
expensive: mac1 first, then under load mac2 and the per-source rate limiter, all before
the message is parsed, then the Diffie-Hellman, and only then any state change. Every
refusal raises RemoteProtocolError, which `Device.receive_datagram` counts as a drop.
A native initiation from a key we have no peer for goes to `stranger` when it is set
(a provider's open admission, node/exits_open.py): it returns the peer it made for the
key, or None to refuse; WireGuard-mode initiations never do.
"""

from collections import Counter
from collections.abc import Callable
from typing import Any

from ..errors import RemoteProtocolError
from ..types import Path, RandomSource
from . import handshake as hs
from .constants import INITIATION_SIZE, RESPONSE_SIZE
from .cookie import CookieChecker
from .crypto import clamp
from .events import Event, HandshakeCompleted
from .keypair import Keypair
from .messages import parse_cookie_reply, parse_initiation, parse_response
from .peer import Peer
from .profile import Mode
from .ratelimiter import RateLimiter


def _sender(data: bytes) -> int:
    """The sender index of a handshake message (bytes 4-8, little-endian; messages.py)."""
    return int.from_bytes(data[4:8], "little")


class HandshakeReceiver:
    # the device's state this part works on (device.py sets it up)
    private_key: bytes
    public_key: bytes
    rng: RandomSource
    peers: dict[bytes, Peer]
    index: dict[int, Peer | Keypair]
    checkers: dict[Mode, CookieChecker]
    counters: Counter[str]
    admit: Callable[[Peer, float], bool] | None
    stranger: Callable[[bytes, float], Peer | None] | None
    ratelimiter: RateLimiter
    cookie_ratelimiter: RateLimiter
    native: Callable[[hs.SessionKeys], Any] | None

    def _send(self, data: bytes, path: Path) -> None:
        raise NotImplementedError

    def _new_index(self) -> int:
        raise NotImplementedError

    def _update_path(self, peer: Peer, path: Path, *, now: float) -> None:
        raise NotImplementedError

    def emit(self, event: Event) -> None:
        raise NotImplementedError

    def send_keepalive(self, peer: Peer, *, now: float) -> None:
        raise NotImplementedError

    def _match_mac1(self, data: bytes, size: int, name: str) -> CookieChecker:
        if len(data) != size:
            raise RemoteProtocolError(f"{name}_size")
        for checker in self.checkers.values():
            if checker.check_mac1(data):
                return checker
        raise RemoteProtocolError(f"{name}_mac1")

    def _check_load(
        self, checker: CookieChecker, data: bytes, sender: int, path: Path, *, now: float, name: str
    ) -> None:
        """Under load (wireguard-go RoutineHandshake): without a valid mac2 a message gets
        a cookie reply, if its source's cookie bucket allows one; with a valid mac2 it goes
        on to the Diffie-Hellman only if its source's bucket allows it."""
        addr = path.address  # cookies bind the source address, whatever the transport
        if not checker.check_mac2(data, addr, now=now):
            if not self.cookie_ratelimiter.allow(addr[0], now=now):
                raise RemoteProtocolError(f"{name}_cookie_rate_limited")
            self._send(checker.create_reply(data, sender, addr, now=now, rng=self.rng), path)
            self.counters["cookie_replies_sent"] += 1
            raise RemoteProtocolError("under_load_cookie_sent")
        if not self.ratelimiter.allow(addr[0], now=now):
            raise RemoteProtocolError(f"{name}_rate_limited")

    def _receive_initiation(self, data: bytes, path: Path, *, now: float, under_load: bool) -> None:
        checker = self._match_mac1(data, INITIATION_SIZE, "initiation")
        if under_load:  # before parsing too: a flood's refusals should cost only the macs
            self._check_load(checker, data, _sender(data), path, now=now, name="initiation")
        msg = parse_initiation(data)
        self.counters["handshake_dh"] += 1  # what a flood can make us spend
        opened = hs.open_initiation(checker.profile, self.private_key, self.public_key, msg)
        peer = self.peers.get(opened.remote_static)
        if peer is None and self.stranger is not None and checker.profile.mode is Mode.NATIVE:
            peer = self.stranger(opened.remote_static, now)  # open admission: a new peer or None
            if peer is None:
                raise RemoteProtocolError("initiation_stranger_refused")
        if peer is None:
            raise RemoteProtocolError("initiation_unknown_peer")
        if peer.profile is not checker.profile:
            raise RemoteProtocolError("initiation_wrong_mode")
        if self.admit is not None and not self.admit(peer, now):
            raise RemoteProtocolError("initiation_capacity")  # before any state changes
        hs.finish_initiation(peer.handshake, opened, now=now)
        # authenticated from here on
        self._update_path(peer, path, now=now)
        peer.on_any_authenticated_packet_traversal(now=now)
        peer.on_any_authenticated_packet_received()
        old = peer.handshake.local_index
        if old and self.index.get(old) is peer:
            del self.index[old]
        idx = self._new_index()
        out, keys = peer.handshake.create_response(
            ephemeral_private=clamp(self.rng(32)), local_index=idx
        )
        peer.cookie.add_macs(out, now=now)
        kp = Keypair(keys, peer_key=peer.public_key, now=now, native=self.native)
        peer.begin_responder_session(kp, self.index)
        peer.on_session_derived(now=now)
        peer.on_any_authenticated_packet_traversal(now=now)
        peer.on_any_authenticated_packet_sent()
        self.counters["responses_sent"] += 1
        self._send(bytes(out), path)

    def _receive_response(self, data: bytes, path: Path, *, now: float, under_load: bool) -> None:
        checker = self._match_mac1(data, RESPONSE_SIZE, "response")
        if under_load:
            self._check_load(checker, data, _sender(data), path, now=now, name="response")
        msg = parse_response(data)
        peer = self.index.get(msg.receiver)
        if not isinstance(peer, Peer):
            raise RemoteProtocolError("response_unknown_index")
        if peer.profile is not checker.profile:
            raise RemoteProtocolError("response_wrong_mode")
        self.counters["handshake_dh"] += 1
        keys = peer.handshake.consume_response(msg)
        # authenticated from here on
        self._update_path(peer, path, now=now)
        peer.on_any_authenticated_packet_traversal(now=now)
        peer.on_any_authenticated_packet_received()
        kp = Keypair(keys, peer_key=peer.public_key, now=now, native=self.native)
        self.index[kp.local_index] = kp
        peer.begin_initiator_session(kp, self.index)
        peer.on_session_derived(now=now)
        peer.on_handshake_complete(now=now)
        self.emit(HandshakeCompleted(peer.public_key, initiator=True))
        self.send_keepalive(peer, now=now)

    def _receive_cookie_reply(self, data: bytes, *, now: float) -> None:
        msg = parse_cookie_reply(data)
        entry = self.index.get(msg.receiver)
        if entry is None:
            raise RemoteProtocolError("cookie_unknown_index")
        peer = entry if isinstance(entry, Peer) else self.peers.get(entry.peer_key)
        if peer is None:
            raise RemoteProtocolError("cookie_unknown_index")
        peer.cookie.consume_reply(msg, now=now)
        self.counters["cookies_received"] += 1
