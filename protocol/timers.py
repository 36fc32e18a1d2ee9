"""Firing a peer's expired timers (wireguard-go's device/timers.go expiry functions).

retransmit      no response 5 s (+ up to 333 ms jitter) after an initiation:
                retry, and give up after 18 retries (90 s), dropping staged packets
send_keepalive  data received and nothing sent back for 10 s: passive keepalive
new_handshake   data sent and nothing authenticated received for 15 s: new handshake
zero_keys       540 s after the last session was derived: erase all keys
persistent      the configured interval after any authenticated packet: keepalive
"""

from typing import TYPE_CHECKING

from .constants import KEEPALIVE_TIMEOUT, MAX_TIMER_HANDSHAKES, ZERO_KEYS_AFTER
from .events import HandshakeGaveUp, KeysZeroed
from .peer import Peer

if TYPE_CHECKING:
    from .device import Device


def fire_peer_timers(device: "Device", peer: Peer, *, now: float) -> None:
    if peer.retransmit is not None and peer.retransmit <= now:
        peer.retransmit = None
        if peer.handshake_attempts > MAX_TIMER_HANDSHAKES:
            peer.staged.clear()
            device.counters["handshakes_gave_up"] += 1
            device.emit(HandshakeGaveUp(peer.public_key))
            if peer.zero_keys is None:
                peer.zero_keys = peer.arm(now + ZERO_KEYS_AFTER)
        else:
            peer.handshake_attempts += 1
            device.send_initiation(peer, now=now, retry=True)
    if peer.send_keepalive is not None and peer.send_keepalive <= now:
        peer.send_keepalive = None
        device.send_keepalive(peer, now=now)
        if peer.need_another_keepalive:
            peer.need_another_keepalive = False
            peer.send_keepalive = peer.arm(now + KEEPALIVE_TIMEOUT)
    if peer.new_handshake is not None and peer.new_handshake <= now:
        peer.new_handshake = None
        device.counters["handshakes_for_silence"] += 1
        device.send_initiation(peer, now=now, retry=False)
    if peer.zero_keys is not None and peer.zero_keys <= now:
        peer.zero_keys = None
        peer.zero(device.index)
        device.emit(KeysZeroed(peer.public_key))
    if peer.persistent_keepalive_at is not None and peer.persistent_keepalive_at <= now:
        peer.persistent_keepalive_at = None
        if peer.persistent_keepalive > 0:
            device.send_keepalive(peer, now=now)
