"""The link's ChaCha20-Poly1305 (RFC 8439 section 2.8): one class, whichever backend runs.

`ChaCha20Poly1305(key)` with `encrypt(nonce, data, aad)` and `decrypt(nonce, data, aad)`,
the interface of `cryptography`'s class. The native data plane's class
(dataplane/src/aead.rs, `tidewire._dataplane`) is chosen when the module is built and
passes the self-test below; otherwise `cryptography`'s. A node with the native module
therefore never maps `cryptography` (its Rust module and statically linked OpenSSL are
6-7 MB of a router's memory, issue 15) unless it runs a masked or stream skin or TLS.

The native class is built on ring's assembly (the `ring` feature, the default), which is
faster per call than `cryptography` (1.4 against 2.8 us for 1400 bytes on this machine
kind), or on the portable RustCrypto code (a toolchain too old for ring), which is slower
than OpenSSL's AVX-512 code for full-size packets (BENCHMARKS.md, "The link's AEAD
without cryptography"). With the portable build, a node that runs the Python data plane
(node/dataplane.py) switches to `cryptography` at start (`use_cryptography`), and so does
a node once its masked or stream skin has loaded `cryptography`: there the AEAD is per
packet. The native data plane seals and opens its packets itself; the class here then
serves handshakes and hand-backs.

A bad tag raises one of `BAD_TAG`, the exceptions of every backend in use: callers catch
that tuple, never a backend's class (a keypair made before a switch keeps its backend).
"""

from collections.abc import Callable
from typing import Any, Protocol

NATIVE = "native"
CRYPTOGRAPHY = "cryptography"

# RFC 8439 section 2.8.2: key, nonce, associated data, plaintext and the tag. The tag
# authenticates the ciphertext, so a right tag says the ciphertext is right too.
RFC8439_KEY = bytes(range(0x80, 0xA0))
RFC8439_NONCE = bytes.fromhex("070000004041424344454647")
RFC8439_AAD = bytes.fromhex("50515253c0c1c2c3c4c5c6c7")
RFC8439_PLAIN = (
    b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for "
    b"the future, sunscreen would be it."
)
RFC8439_TAG = bytes.fromhex("1ae10b594f09e26a7e902ecbd0600691")


class Aead(Protocol):
    """One key's ChaCha20-Poly1305, as both backends' classes offer it."""

    def encrypt(
        self, nonce: bytes, data: bytes | memoryview, associated_data: bytes | None
    ) -> bytes: ...

    def decrypt(
        self, nonce: bytes, data: bytes | memoryview, associated_data: bytes | None
    ) -> bytes: ...


def self_test(cls: Any, invalid_tag: type[Exception]) -> bool:
    """Does `cls` give RFC 8439's tag, open its own output and refuse a flipped bit?"""
    key, nonce, aad, plain = RFC8439_KEY, RFC8439_NONCE, RFC8439_AAD, RFC8439_PLAIN
    try:
        box = cls(key)
        sealed = box.encrypt(nonce, plain, aad)
        if sealed[-16:] != RFC8439_TAG or box.decrypt(nonce, memoryview(sealed), aad) != plain:
            return False
        forged = bytes([sealed[0] ^ 1]) + sealed[1:]
        try:
            box.decrypt(nonce, forged, aad)
        except invalid_tag:
            return True
        return False
    except Exception:  # a broken build must not stop the node: cryptography runs then
        return False


def _native() -> tuple[Any, type[Exception]] | None:
    try:
        from tidewire import _dataplane  # type: ignore[attr-defined]
    except ImportError:
        return None
    cls = getattr(_dataplane, "ChaCha20Poly1305", None)  # a build from before aead.rs
    invalid_tag = getattr(_dataplane, "InvalidTag", None)
    if cls is None or invalid_tag is None or not self_test(cls, invalid_tag):
        return None
    return cls, invalid_tag


def _cryptography() -> tuple[Any, type[Exception]]:
    from cryptography.exceptions import InvalidTag as invalid_tag
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305 as cls

    return cls, invalid_tag


def choose() -> tuple[str, Callable[[bytes], Aead], type[Exception]]:
    """(backend name, the class, its bad-tag exception)."""
    native = _native()
    if native is not None:
        return (NATIVE, *native)
    return (CRYPTOGRAPHY, *_cryptography())


BACKEND, ChaCha20Poly1305, _invalid_tag = choose()
BAD_TAG: tuple[type[Exception], ...] = (_invalid_tag,)
NATIVE_IS_FASTER = BACKEND == NATIVE and getattr(ChaCha20Poly1305, "ASSEMBLY", False) is True


def use_cryptography() -> None:
    """Keypairs made from now on use `cryptography`'s class, unless the native class is
    the faster one: on the Python data plane, and once a masked or stream skin has
    loaded `cryptography` anyway (their peers' packets take the Python path)."""
    global BACKEND, ChaCha20Poly1305, BAD_TAG
    if BACKEND == CRYPTOGRAPHY or (BACKEND == NATIVE and NATIVE_IS_FASTER):
        return
    cls, invalid_tag = _cryptography()
    BACKEND, ChaCha20Poly1305 = CRYPTOGRAPHY, cls
    if invalid_tag not in BAD_TAG:
        BAD_TAG = (*BAD_TAG, invalid_tag)
