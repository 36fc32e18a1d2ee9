"""mac1, mac2 and cookie replies: WireGuard's DoS mitigation (whitepaper section 5.4.4, 5.4.7).

Every handshake message carries mac1 = MAC(HASH(label_mac1 || receiver's static
public key), message up to mac1): anyone who knows the receiver's public key can
make it, and the responder checks it before doing any Diffie-Hellman. Under
load, the responder also demands mac2 = MAC(cookie, message up to mac2), where
the cookie is MAC(secret, source IP and port) and the secret rotates every 2
minutes. A sender without a valid cookie gets a cookie reply instead: the cookie
encrypted with XChaCha20-Poly1305 under HASH(label_cookie || responder's key),
bound to the mac1 it answers.

`CookieChecker` is the responder's side (one per profile and local key);
`CookieGenerator` is the sender's side (one per peer).
"""

import ipaddress

from ..errors import RemoteProtocolError
from ..types import Endpoint, RandomSource
from .constants import COOKIE_NONCE_SIZE, COOKIE_REFRESH_TIME, MAC_SIZE
from .crypto import blake2s, equal, mac, xaead_decrypt, xaead_encrypt
from .messages import CookieReply, build_cookie_reply
from .profile import Profile

_ZERO_MAC = bytes(MAC_SIZE)


def endpoint_bytes(addr: Endpoint) -> bytes:
    """The source address as the cookie binds it: IP bytes, then port big-endian."""
    host, port = addr
    try:
        packed = ipaddress.ip_address(host).packed
    except ValueError:  # a relayed path's address names keys, not an IP: bind its text
        packed = blake2s(host.encode()).digest()[:16]
    return packed + port.to_bytes(2, "big")


class CookieChecker:
    """The responder's side: checks mac1 and mac2, makes cookie replies."""

    def __init__(self, profile: Profile, local_public: bytes) -> None:
        self.profile = profile
        self.mac1_key = profile.mac1_key(local_public)
        self.cookie_key = profile.cookie_key(local_public)
        self.secret: bytes | None = None
        self.secret_set = 0.0

    def check_mac1(self, msg: bytes) -> bool:
        expected = mac(self.mac1_key, msg[:-32])
        return equal(expected, msg[-32:-16])

    def check_mac2(self, msg: bytes, addr: Endpoint, *, now: float) -> bool:
        if self.secret is None or now - self.secret_set > COOKIE_REFRESH_TIME:
            return False
        cookie = mac(self.secret, endpoint_bytes(addr))
        return equal(mac(cookie, msg[:-16]), msg[-16:])

    def create_reply(
        self, msg: bytes, receiver: int, addr: Endpoint, *, now: float, rng: RandomSource
    ) -> bytes:
        if self.secret is None or now - self.secret_set > COOKIE_REFRESH_TIME:
            self.secret = rng(32)
            self.secret_set = now
        cookie = mac(self.secret, endpoint_bytes(addr))
        nonce = rng(COOKIE_NONCE_SIZE)
        sealed = xaead_encrypt(self.cookie_key, nonce, cookie, msg[-32:-16])
        return build_cookie_reply(
            CookieReply(receiver=receiver, nonce=nonce, encrypted_cookie=sealed)
        )


class CookieGenerator:
    """The sender's side, per peer: adds mac1 and mac2, takes in cookie replies."""

    __slots__ = ("cookie", "cookie_key", "cookie_set", "last_mac1", "mac1_key")

    def __init__(self, profile: Profile, remote_public: bytes) -> None:
        self.mac1_key = profile.mac1_key(remote_public)
        self.cookie_key = profile.cookie_key(remote_public)
        self.cookie: bytes | None = None
        self.cookie_set = 0.0
        self.last_mac1: bytes | None = None

    def add_macs(self, msg: bytearray, *, now: float) -> None:
        """Fill the last 32 bytes of a handshake message with mac1 and mac2."""
        mac1 = mac(self.mac1_key, bytes(msg[:-32]))
        msg[-32:-16] = mac1
        self.last_mac1 = mac1
        if self.cookie is not None and now - self.cookie_set <= COOKIE_REFRESH_TIME:
            msg[-16:] = mac(self.cookie, bytes(msg[:-16]))
        else:
            msg[-16:] = _ZERO_MAC

    def consume_reply(self, reply: CookieReply, *, now: float) -> None:
        """Decrypt a cookie reply; raise RemoteProtocolError if it does not answer our mac1."""
        if self.last_mac1 is None:
            raise RemoteProtocolError("cookie_unexpected")
        self.cookie = xaead_decrypt(
            self.cookie_key, reply.nonce, reply.encrypted_cookie, self.last_mac1
        )
        self.cookie_set = now
        self.last_mac1 = None
