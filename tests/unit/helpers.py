"""Deterministic helpers for the sans-IO tests: seeded randomness and key pairs."""

import hashlib

from tidewire.protocol.link.crypto import clamp, public_key


class SeededRandom:
    """A RandomSource from a counter-mode hash of a seed: reproducible byte for byte."""

    def __init__(self, seed: bytes | str) -> None:
        self.seed = seed.encode() if isinstance(seed, str) else seed
        self.counter = 0

    def __call__(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += hashlib.sha256(self.seed + self.counter.to_bytes(8, "little")).digest()
            self.counter += 1
        return out[:n]


def keypair(name: str) -> tuple[bytes, bytes]:
    private = clamp(hashlib.sha256(b"tidewire test key " + name.encode()).digest())
    return private, public_key(private)
