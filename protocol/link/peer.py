"""A peer: its configuration, handshake, keypairs, staged packets and timers.

The timers are wireguard-go's (device/timers.go), kept as absolute deadlines in
the caller's monotonic seconds; `None` means not armed. The `on_*` methods are
the timer hooks wireguard-go calls at the same points (any authenticated packet
sent, received or traversing; data sent or received; handshake complete;
session derived). The Device fires expired deadlines from `handle_timer`.
"""

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import LocalProtocolError
from ..types import UDP, Endpoint, Path
from .constants import (
    KEEPALIVE_TIMEOUT,
    KEY_SIZE,
    MAX_STAGED_PACKETS,
    REJECT_AFTER_MESSAGES,
    REJECT_AFTER_TIME,
    REKEY_TIMEOUT,
    ZERO_KEYS_AFTER,
)
from .cookie import CookieGenerator
from .handshake import Handshake
from .keypair import Keypair
from .profile import PROFILES, Mode


@dataclass(frozen=True, slots=True)
class PeerConfig:
    public_key: bytes
    preshared_key: bytes | None = None
    endpoint: Endpoint | None = None  # a plain UDP endpoint: Path(UDP, endpoint)
    path: Path | None = None  # any transport's path (a skin's); wins over `endpoint`
    persistent_keepalive: int = 0  # seconds; 0 is off
    mode: Mode = Mode.WIREGUARD
    last_sent_timestamp: bytes | None = None  # the persisted TAI64N, if any

    def __post_init__(self) -> None:
        if len(self.public_key) != KEY_SIZE:
            raise LocalProtocolError(f"public_key: a key is {KEY_SIZE} bytes")
        if self.preshared_key is not None and len(self.preshared_key) != KEY_SIZE:
            raise LocalProtocolError(f"preshared_key: a key is {KEY_SIZE} bytes")
        if not 0 <= self.persistent_keepalive <= 65535:
            raise LocalProtocolError("persistent_keepalive: seconds from 0 (off) to 65535")


class Peer:
    def __init__(self, config: PeerConfig, *, local_private: bytes, local_public: bytes) -> None:
        self.config = config
        self.public_key = config.public_key
        self.profile = PROFILES[config.mode]
        # where datagrams for this peer go: chosen by the device's path policy (roaming)
        self.path: Path | None = config.path
        if self.path is None and config.endpoint is not None:
            self.path = Path(UDP, config.endpoint)
        # called with (path, now) for every authenticated packet instead of roaming: a
        # native peer's path set (node/core/paths) decides where its datagrams go
        self.path_hook: Callable[[Path, float], None] | None = None
        self.last_initiation: bytes | None = None  # the latest one sent, for racing paths
        self.persistent_keepalive = float(config.persistent_keepalive)
        self.handshake = Handshake(
            profile=self.profile,
            local_private=local_private,
            local_public=local_public,
            remote_static=config.public_key,
            preshared_key=config.preshared_key or bytes(KEY_SIZE),
        )
        self.cookie = CookieGenerator(self.profile, config.public_key)
        self.previous: Keypair | None = None
        self.current: Keypair | None = None
        self.next: Keypair | None = None
        self.staged: deque[bytes] = deque()
        self.last_sent_timestamp = config.last_sent_timestamp
        self.last_handshake: float | None = None  # monotonic time of the last completed handshake
        self.rx_bytes = 0
        self.tx_bytes = 0
        self.rx_done = (0, 0)  # rx_counts of the keypairs gone (rx_loss)
        # timers
        self.retransmit: float | None = None
        self.send_keepalive: float | None = None
        self.new_handshake: float | None = None
        self.zero_keys: float | None = None
        self.persistent_keepalive_at: float | None = None
        # the deadline this peer is queued under in its device's timer heap, and the
        # device's list of peers to (re)queue; see `arm` and timers.TimerQueue
        self.queued_deadline: float | None = None
        self.rearmed: list[Peer] = []
        self.handshake_attempts = 0
        self.handshakes = 0  # completed, either side initiating (for the metrics)
        self.need_another_keepalive = False
        self.sent_last_minute_handshake = False

    def __repr__(self) -> str:
        return f"<Peer {self.public_key.hex()[:8]} {self.profile.mode.value} path={self.path}>"

    # -- keypairs -----------------------------------------------------------

    def usable_keypair(self, *, now: float) -> Keypair | None:
        kp = self.current
        if (
            kp is None
            or now - kp.created >= REJECT_AFTER_TIME
            or kp.send_counter >= REJECT_AFTER_MESSAGES
        ):
            return None
        return kp

    def keypairs(self) -> list[Keypair]:
        return [kp for kp in (self.previous, self.current, self.next) if kp is not None]

    def stage(self, packet: bytes) -> bool:
        """Queue a packet until a session exists; False if the oldest one had to go."""
        overflow = len(self.staged) >= MAX_STAGED_PACKETS
        if overflow:
            self.staged.popleft()
        self.staged.append(packet)
        return not overflow

    # -- timers -------------------------------------------------------------

    def next_deadline(self) -> float | None:
        best: float | None = None
        for t in (
            self.retransmit,
            self.send_keepalive,
            self.new_handshake,
            self.zero_keys,
            self.persistent_keepalive_at,
        ):
            if t is not None and (best is None or t < best):
                best = t
        return best

    def arm(self, deadline: float) -> float:
        """Every timer set to a time goes through here: a deadline earlier than the one the
        peer is queued under puts the peer on the device's re-queue list. Later deadlines
        and cleared timers need nothing: the queued entry is re-checked when it comes due."""
        queued = self.queued_deadline
        if queued is None or deadline < queued:
            self.queued_deadline = deadline
            self.rearmed.append(self)
        return deadline

    def on_any_authenticated_packet_traversal(self, *, now: float) -> None:
        if self.persistent_keepalive > 0:
            self.persistent_keepalive_at = self.arm(now + self.persistent_keepalive)

    def on_any_authenticated_packet_sent(self) -> None:
        self.send_keepalive = None

    def on_any_authenticated_packet_received(self) -> None:
        self.new_handshake = None

    def on_data_sent(self, *, now: float) -> None:
        if self.new_handshake is None:
            self.new_handshake = self.arm(now + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT)

    def on_data_received(self, *, now: float) -> None:
        if self.send_keepalive is None:
            self.send_keepalive = self.arm(now + KEEPALIVE_TIMEOUT)
        else:
            self.need_another_keepalive = True

    def on_handshake_initiated(self, *, now: float, jitter: float) -> None:
        self.retransmit = self.arm(now + REKEY_TIMEOUT + jitter)

    def on_handshake_complete(self, *, now: float) -> None:
        self.retransmit = None
        self.handshake_attempts = 0
        self.sent_last_minute_handshake = False
        self.last_handshake = now
        self.handshakes += 1

    def on_session_derived(self, *, now: float) -> None:
        self.zero_keys = self.arm(now + ZERO_KEYS_AFTER)

    def clear_timers(self) -> None:
        self.retransmit = self.send_keepalive = self.new_handshake = None
        self.zero_keys = self.persistent_keepalive_at = None

    # -- keypair rotation (wireguard-go's BeginSymmetricSession and ReceivedWithKeypair)
    #
    # `index` is the device's receiver-index table; a keypair that is dropped
    # here leaves it, so packets for it are refused as unknown.

    def begin_initiator_session(self, kp: Keypair, index: dict[int, Any]) -> None:
        index[kp.local_index] = kp
        if self.next is not None:
            self._drop(self.previous, index)
            self.previous = self.next
            self.next = None
            self._drop(self.current, index)
        else:
            self._drop(self.previous, index)
            self.previous = self.current
        self.current = kp

    def begin_responder_session(self, kp: Keypair, index: dict[int, Any]) -> None:
        index[kp.local_index] = kp
        self._drop(self.next, index)
        self.next = kp
        self._drop(self.previous, index)
        self.previous = None

    def promote_next(self, index: dict[int, Any]) -> None:
        self._drop(self.previous, index)
        self.previous = self.current
        self.current = self.next
        self.next = None

    def zero(self, index: dict[int, Any]) -> None:
        """Erase every keypair and the handshake state (keys are dropped, not reused)."""
        for kp in self.keypairs():
            self._drop(kp, index)
        self.previous = self.current = self.next = None
        self.last_initiation = None
        idx = self.handshake.local_index
        if idx and index.get(idx) is self:
            del index[idx]
        self.handshake.clear()

    def _drop(self, kp: Keypair | None, index: dict[int, Any]) -> None:
        """A keypair leaves: out of the index, its counts kept in `rx_done`."""
        if kp is None:
            return
        lost, accepted = kp.rx_counts()
        self.rx_done = (self.rx_done[0] + lost, self.rx_done[1] + accepted)
        _unindex(kp, index)

    def rx_loss(self) -> tuple[int, int]:
        """(datagrams lost, datagrams accepted) over every keypair this peer has had: what
        it sent that never arrived, as its counters number it (ReplayWindow.lost)."""
        lost, accepted = self.rx_done
        for kp in self.keypairs():
            n, a = kp.rx_counts()
            lost, accepted = lost + n, accepted + a
        return lost, accepted


def _unindex(kp: Keypair, index: dict[int, Any]) -> None:
    idx = kp.local_index
    if index.get(idx) is kp:
        del index[idx]
