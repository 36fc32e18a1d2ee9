"""The `masked` skin: WireGuard datagrams on UDP with no byte at a fixed offset and no size
that an observer without the responder's static public key can use.

Keys. Everything is keyed from the responder's static public key S_pub, as WireGuard keys
mac1 (whitepaper section 5.4.4, HASH(LABEL_MAC1 || S_pub)):

    hp_key = BLAKE2s-128("tidewire masked hp v1" || S_pub)    header protection (AES-128)
    hs_key = BLAKE2s-256("tidewire masked hs v1" || S_pub)    handshake sealing (XChaCha20-Poly1305)

Every wire datagram starts with a 16-byte protected header H, followed by at least 16
bytes whose first 16 are the *sample* (RFC 9001 section 5.4.2), then padding:

    H = plain_header XOR AES-128-ECB(hp_key, sample)           (RFC 9001 section 5.4.3)
    plain_header = type (1 byte) || length (3 bytes, LE) || 12 bytes

- Transport (type 4): plain_header is WireGuard's own 16-byte header with the three
  reserved bytes of the type word replaced by the datagram's length; the AEAD ciphertext
  follows unchanged and its first 16 bytes are the sample, as QUIC samples its packet
  protection. Overhead: 0 bytes beyond the padding.
- Handshake (types 1-3): the 12 bytes are zero; then a random 24-byte nonce (whose first
  16 bytes are the sample) and the whole message sealed with XChaCha20-Poly1305 under
  hs_key, with plain_header as associated data. Overhead: 16 + 24 + 16 = 56 bytes.
- Decoy: type 0, random everywhere else; the receiver drops it.

Padding is random bytes up to a wire size drawn from `PaddingSizes`, a weighted set of
ranges, conditioned on being at least the datagram's own size; a datagram larger than
every range is sent unpadded.

Why AES and not ChaCha20 (RFC 9001 section 5.4.4): `cryptography` offers ChaCha20 only
as a cipher object per nonce, 4.2 µs per mask here; one long-lived AES-ECB encryptor
takes 0.23 µs, and unwrap is the receive hot path.

What this does NOT hide:
- Anyone with S_pub (a provider's public key is in its node record) can unmask every
  header and open every handshake wrapper; the skin only defeats observers without it.
  The link's own Noise handshake and AEAD are what protect the traffic.
- Timing, direction, burst shape and volume; sizes of large datagrams (above every range).
- The first-packet exchange pattern (one datagram each way, then data) and that the
  flow is high-entropy UDP with no recognisable protocol, which is itself a signal.
- A transport datagram is not authenticated by the skin: a forged one whose unmasked
  type and length look right reaches the link, which drops it (unknown index or bad
  AEAD) without a reply. Handshake wrappers are authenticated, so nothing unauthentic
  ever reaches the handshake code, and no datagram that fails here gets any reply.

`unwrap` returns None for anything it refuses and keeps no state; the caller counts drops.
"""

from _blake2 import blake2s
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nacl import bindings as _sodium
from nacl.exceptions import CryptoError

from ..errors import LocalProtocolError
from ..link import aead
from ..link.constants import (
    COOKIE_REPLY_SIZE,
    INITIATION_SIZE,
    KEEPALIVE_SIZE,
    MAX_TRANSPORT_SIZE,
    MESSAGE_COOKIE_REPLY,
    MESSAGE_INITIATION,
    MESSAGE_RESPONSE,
    MESSAGE_TRANSPORT,
    RESPONSE_SIZE,
)
from ..link.messages import message_type
from ..types import RandomSource

HP_LABEL = b"tidewire masked hp v1"
HS_LABEL = b"tidewire masked hs v1"

HEADER_SIZE = 16
SAMPLE_SIZE = 16
NONCE_SIZE = 24
TAG_SIZE = 16
HANDSHAKE_OVERHEAD = HEADER_SIZE + NONCE_SIZE + TAG_SIZE  # 56
MIN_WIRE_SIZE = HEADER_SIZE + SAMPLE_SIZE  # 32: a decoy or a keepalive
TYPE_DECOY = 0

HANDSHAKE_SIZES = {
    MESSAGE_INITIATION: INITIATION_SIZE,
    MESSAGE_RESPONSE: RESPONSE_SIZE,
    MESSAGE_COOKIE_REPLY: COOKIE_REPLY_SIZE,
}

# Clears bits 8..31 (the length) of an unmasked transport header, leaving WireGuard's
# type word 4,0,0,0 with the receiver index and counter.
_CLEAR_LENGTH = ~(0xFFFFFF << 8) & ((1 << 128) - 1)

# Wire sizes fit a 1280-byte IPv6 path (1280 - 40 - 8); small ranges weigh most, as
# most datagrams of a tunnel are ACKs and keepalives.
DEFAULT_SIZES: tuple[tuple[int, int, int], ...] = ((64, 200, 4), (200, 600, 3), (600, 1232, 2))


def derive_key(label: bytes, responder_public: bytes, size: int = 32) -> bytes:
    """BLAKE2s-`size`(label || S_pub): one key of the skins, public to anyone with S_pub."""
    if len(responder_public) != 32:
        raise LocalProtocolError("the responder's public key must be 32 bytes")
    return blake2s(label + responder_public, digest_size=size).digest()


@dataclass(frozen=True, slots=True)
class PaddingSizes:
    """Wire sizes to pad to: ranges (low, high, weight), low and high inclusive.

    `draw(need)` picks among the ranges whose high reaches `need` by weight, then a size
    uniformly in [max(low, need), high]; if no range reaches `need` it returns `need`.
    """

    ranges: tuple[tuple[int, int, int], ...]

    @classmethod
    def parse(cls, ranges: Sequence[tuple[int, int, int]]) -> "PaddingSizes":
        """Checked configuration: one sentence naming the bad range, else the sizes."""
        if not ranges:
            raise LocalProtocolError("padding sizes: at least one (low, high, weight) range")
        for i, item in enumerate(ranges):
            if len(item) != 3 or not all(isinstance(v, int) for v in item):
                raise LocalProtocolError(f"padding sizes[{i}]: expected (low, high, weight)")
            low, high, weight = item
            if not MIN_WIRE_SIZE <= low <= high <= 65535:
                raise LocalProtocolError(
                    f"padding sizes[{i}]: need {MIN_WIRE_SIZE} <= low <= high <= 65535,"
                    f" got ({low}, {high})"
                )
            if weight <= 0:
                raise LocalProtocolError(f"padding sizes[{i}]: weight must be positive")
        return cls(tuple((low, high, weight) for low, high, weight in ranges))

    def draw(self, need: int, rng: RandomSource) -> int:
        fit = [r for r in self.ranges if r[1] >= need]
        if not fit:
            return need
        r = int.from_bytes(rng(8), "little")
        pick = (r & 0xFFFFFFFF) % sum(w for _, _, w in fit)  # bias < 2**-20: immaterial
        for low, high, weight in fit:
            if pick < weight:
                low = max(low, need)
                return low + (r >> 32) % (high - low + 1)
            pick -= weight
        raise AssertionError("unreachable: pick < total weight")


class MaskedSkin:
    """Wraps and unwraps link datagrams for the peer whose responder key is `responder_public`.

    "Responder" means the node that listens on the path (the provider), not the side
    that happens to start a given Noise handshake: WireGuard rekeys from either side,
    and both directions of a path keep this one key. The dialling side knows it from
    the listener's node record; the listener uses its own. A node that dials some peers
    holds one skin per listener key.
    """

    __slots__ = ("_hp", "_hp_key", "_hs_key", "responder_public", "sizes")

    def __init__(
        self,
        responder_public: bytes,
        *,
        sizes: PaddingSizes | Sequence[tuple[int, int, int]] = DEFAULT_SIZES,
    ) -> None:
        self._hp_key = derive_key(HP_LABEL, responder_public, 16)
        self._hp: Any = None  # built on the first datagram (`_mask`)
        self.responder_public = responder_public
        self._hs_key = derive_key(HS_LABEL, responder_public)
        self.sizes = sizes if isinstance(sizes, PaddingSizes) else PaddingSizes.parse(sizes)

    @property
    def hp_key(self) -> bytes:
        """The header protection key (public: it is derived from S_pub), for the native
        threads' own skin (dataplane/src/mask.rs)."""
        return self._hp_key

    def _mask(self, sample: bytes) -> int:
        hp = self._hp
        if hp is None:
            # Every node holds its own skin, but only one that sends or receives masked
            # datagrams loads `cryptography` for it (protocol/link/aead.py; issue 15's
            # memory). ECB on exactly one block per update keeps no state between calls:
            # the encryptor is a keyed block function, built once (RFC 9001 section 5.4.3).
            from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

            aead.use_cryptography()  # loaded now: the link's faster AEAD per packet
            hp = self._hp = Cipher(algorithms.AES(self._hp_key), modes.ECB()).encryptor()
        return int.from_bytes(hp.update(sample), "little")

    def wrap(self, datagram: bytes, *, rng: RandomSource) -> bytes:
        """Wire bytes for one link datagram. A datagram the link would never produce
        (bad type word, wrong size) is our own bug: LocalProtocolError."""
        kind = message_type(datagram)
        n = len(datagram)
        if kind == MESSAGE_TRANSPORT:
            if not KEEPALIVE_SIZE <= n <= MAX_TRANSPORT_SIZE:
                raise LocalProtocolError(f"transport datagram of {n} bytes")
            plain = int.from_bytes(datagram[:HEADER_SIZE], "little") | (n << 8)
            masked = plain ^ self._mask(datagram[HEADER_SIZE : HEADER_SIZE + SAMPLE_SIZE])
            size = self.sizes.draw(n, rng)
            pad = rng(size - n) if size > n else b""
            return masked.to_bytes(HEADER_SIZE, "little") + datagram[HEADER_SIZE:] + pad
        if kind in HANDSHAKE_SIZES:
            if n != HANDSHAKE_SIZES[kind]:
                raise LocalProtocolError(f"handshake message type {kind} of {n} bytes")
            plain_header = bytes((kind,)) + n.to_bytes(3, "little") + bytes(12)
            nonce = rng(NONCE_SIZE)
            sealed = _sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
                datagram, plain_header, nonce, self._hs_key
            )
            masked = int.from_bytes(plain_header, "little") ^ self._mask(nonce[:SAMPLE_SIZE])
            need = HANDSHAKE_OVERHEAD + n
            size = self.sizes.draw(need, rng)
            pad = rng(size - need) if size > need else b""
            return masked.to_bytes(HEADER_SIZE, "little") + nonce + sealed + pad
        raise LocalProtocolError(f"not a link datagram (type word {datagram[:4].hex()})")

    def decoy(self, *, rng: RandomSource) -> bytes:
        """A datagram that looks like any other and that the receiver drops (type 0)."""
        size = self.sizes.draw(MIN_WIRE_SIZE, rng)
        body = rng(size)
        plain = int.from_bytes(body[:HEADER_SIZE], "little") & ~0xFF  # type byte 0
        masked = plain ^ self._mask(body[HEADER_SIZE : HEADER_SIZE + SAMPLE_SIZE])
        return masked.to_bytes(HEADER_SIZE, "little") + body[HEADER_SIZE:]

    def is_decoy(self, data: bytes) -> bool:
        """Whether `data` unmasks to a decoy's type byte (for counting what `unwrap` refused:
        random bytes pass this one time in 256)."""
        if len(data) < MIN_WIRE_SIZE:
            return False
        plain = int.from_bytes(data[:HEADER_SIZE], "little") ^ self._mask(
            data[HEADER_SIZE : HEADER_SIZE + SAMPLE_SIZE]
        )
        return plain & 0xFF == TYPE_DECOY

    def unwrap(self, data: bytes) -> bytes | None:
        """The link datagram in `data`, or None. Never raises on network input.

        A transport datagram comes back unauthenticated (the link's AEAD checks it); a
        handshake message comes back only if its wrapper authenticates.
        """
        n = len(data)
        if n < MIN_WIRE_SIZE:
            return None
        plain = int.from_bytes(data[:HEADER_SIZE], "little") ^ self._mask(
            data[HEADER_SIZE : HEADER_SIZE + SAMPLE_SIZE]
        )
        kind = plain & 0xFF
        length = (plain >> 8) & 0xFFFFFF
        if kind == MESSAGE_TRANSPORT:
            if length < KEEPALIVE_SIZE or length > n:
                return None
            return (plain & _CLEAR_LENGTH).to_bytes(HEADER_SIZE, "little") + data[
                HEADER_SIZE:length
            ]
        size = HANDSHAKE_SIZES.get(kind)
        if size is None or length != size or n < HANDSHAKE_OVERHEAD + size:
            return None
        try:
            message: bytes = _sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
                data[HEADER_SIZE + NONCE_SIZE : HANDSHAKE_OVERHEAD + size],
                plain.to_bytes(HEADER_SIZE, "little"),
                data[HEADER_SIZE : HEADER_SIZE + NONCE_SIZE],
                self._hs_key,
            )
        except CryptoError:
            return None
        # Only a holder of S_pub seals; still, hand the link nothing but its own framing.
        return message if message_type(message) == kind else None
