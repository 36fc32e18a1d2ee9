"""When is the device under load? (wireguard-go device.IsUnderLoad, in spirit.)

wireguard-go calls a device under load while its handshake queue is more than an eighth
full, and for a second after. This core has no queue of its own, so it counts handshake
messages (initiations and responses) per one-second window instead: past `threshold` of
them in a window, it is under load until a second after the last message over the
threshold. Under load, a handshake message without a valid mac2 gets a cookie reply
instead of the Diffie-Hellman work (cookie.py).
"""

LOAD_WINDOW = 1.0  # seconds
LOAD_THRESHOLD = 128  # handshake messages per window before cookies are demanded


class HandshakeLoad:
    def __init__(self, *, threshold: int = LOAD_THRESHOLD, window: float = LOAD_WINDOW) -> None:
        self.threshold = threshold
        self.window = window
        self._window_start = float("-inf")
        self._count = 0
        self._until = float("-inf")

    def count(self, *, now: float) -> bool:
        """One handshake message arrived at `now`; is the device under load?"""
        if now - self._window_start > self.window:
            self._window_start, self._count = now, 0
        self._count += 1
        if self._count > self.threshold:
            self._until = now + self.window
        return now < self._until
