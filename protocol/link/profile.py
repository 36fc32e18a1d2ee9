"""Profiles: the same Noise_IKpsk2 machine under different identifier strings.

The WireGuard profile uses WireGuard's construction, identifier and labels
(whitepaper section 5.4), so it is byte-exact with every WireGuard peer. The
native profile keeps the Noise pattern but changes the prologue and the mac1
and cookie labels (domain separation): a native message fails mac1 at a
WireGuard responder and vice versa, and even with mac1 forged, the handshake
hash differs, so the AEAD fails. A peer's profile is chosen in its config.
"""

from dataclasses import dataclass, field
from enum import Enum

from .crypto import hash_

CONSTRUCTION = b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"


class Mode(Enum):
    WIREGUARD = "wireguard"
    NATIVE = "native"


@dataclass(frozen=True)
class Profile:
    mode: Mode
    identifier: bytes
    label_mac1: bytes
    label_cookie: bytes
    initial_chain_key: bytes = field(init=False)
    initial_hash: bytes = field(init=False)

    def __post_init__(self) -> None:
        ck = hash_(CONSTRUCTION)
        object.__setattr__(self, "initial_chain_key", ck)
        object.__setattr__(self, "initial_hash", hash_(ck + self.identifier))

    def mac1_key(self, public: bytes) -> bytes:
        return hash_(self.label_mac1 + public)

    def cookie_key(self, public: bytes) -> bytes:
        return hash_(self.label_cookie + public)


WIREGUARD = Profile(
    mode=Mode.WIREGUARD,
    identifier=b"WireGuard v1 zx2c4 Jason@zx2c4.com",
    label_mac1=b"mac1----",
    label_cookie=b"cookie--",
)

NATIVE = Profile(
    mode=Mode.NATIVE,
    identifier=b"tidewire native v1 link",
    label_mac1=b"tw-mac1-",
    label_cookie=b"tw-cook-",
)

PROFILES = {Mode.WIREGUARD: WIREGUARD, Mode.NATIVE: NATIVE}
