"""The link's ChaCha20-Poly1305 (protocol/link/aead.py): the native class
(dataplane/src/aead.rs) and `cryptography`'s, and the choice between them.

Sources:
- RFC 8439 section 2.8.2 ("Example and Test Vector for AEAD_CHACHA20_POLY1305"): the
  ciphertext and the tag verbatim here; its inputs (key 80..9f, nonce 07000000 with IV
  4041424344454647, AAD, the "sunscreen" plaintext) are aead.py's, for its self-test.
- Differential: random keys, nonces, data and associated data, against `cryptography`'s
  implementation (OpenSSL), which only tests import here.
"""

import sys
import types
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag as CryptographyInvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305 as Reference
from hypothesis import given
from hypothesis import strategies as st

import tidewire
from tidewire.node.dataplane import load
from tidewire.protocol.link import aead
from tidewire.protocol.link.aead import RFC8439_AAD as AAD
from tidewire.protocol.link.aead import RFC8439_KEY as KEY
from tidewire.protocol.link.aead import RFC8439_NONCE as NONCE
from tidewire.protocol.link.aead import RFC8439_PLAIN as PLAIN

# None when not built, or built before aead.rs
Native: Any = getattr(load(), "ChaCha20Poly1305", None)
NativeInvalidTag: Any = getattr(load(), "InvalidTag", None)

needs_native = pytest.mark.skipif(
    Native is None, reason="tidewire._dataplane is not built (scripts/setup builds it)"
)

CIPHERTEXT = bytes.fromhex(
    "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
    "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
    "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
    "3ff4def08e4b7a9de576d26586cec64b6116"
)
TAG = bytes.fromhex("1ae10b594f09e26a7e902ecbd0600691")

BACKENDS = [
    pytest.param((Native, NativeInvalidTag), marks=needs_native, id="native"),
    pytest.param((Reference, CryptographyInvalidTag), id="cryptography"),
]


@pytest.mark.parametrize("backend", BACKENDS)
def test_rfc8439_section_2_8_2(backend: tuple[type, type[Exception]]) -> None:
    cls, _ = backend
    box = cls(KEY)
    assert box.encrypt(NONCE, PLAIN, AAD) == CIPHERTEXT + TAG
    assert box.decrypt(NONCE, CIPHERTEXT + TAG, AAD) == PLAIN
    # the link passes a datagram's body as a memoryview past its 16-byte header
    assert box.decrypt(NONCE, memoryview(bytes(16) + CIPHERTEXT + TAG)[16:], AAD) == PLAIN


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "forged",
    [
        (NONCE, CIPHERTEXT[:-1] + bytes([CIPHERTEXT[-1] ^ 1]) + TAG, AAD),
        (NONCE, CIPHERTEXT + TAG[:-1] + bytes([TAG[-1] ^ 0x80]), AAD),
        (NONCE, CIPHERTEXT + TAG, AAD[:-1]),
        (NONCE, CIPHERTEXT + TAG, None),
        (bytes(12), CIPHERTEXT + TAG, AAD),
        (NONCE, TAG[:15], AAD),  # shorter than a tag
        (NONCE, b"", AAD),
    ],
    ids=["ciphertext", "tag", "aad", "no-aad", "nonce", "short", "empty"],
)
def test_a_forgery_raises_the_backends_invalid_tag(
    backend: tuple[type, type[Exception]], forged: tuple[bytes, bytes, bytes | None]
) -> None:
    cls, invalid_tag = backend
    with pytest.raises(invalid_tag):
        cls(KEY).decrypt(*forged)


@needs_native
def test_the_native_class_refuses_a_wrong_key_or_nonce_size() -> None:
    with pytest.raises(ValueError, match="key"):
        Native(bytes(31))
    with pytest.raises(ValueError, match="nonce"):
        Native(KEY).encrypt(bytes(8), PLAIN, None)
    with pytest.raises(ValueError, match="nonce"):
        Native(KEY).decrypt(bytes(13), CIPHERTEXT + TAG, None)


@needs_native
@given(
    key=st.binary(min_size=32, max_size=32),
    nonce=st.binary(min_size=12, max_size=12),
    data=st.binary(max_size=2000),
    aad=st.none() | st.binary(max_size=64),
    offset=st.integers(min_value=0, max_value=16),
    flip=st.integers(min_value=0, max_value=8 * 2016),
)
def test_the_native_class_matches_cryptography(
    key: bytes, nonce: bytes, data: bytes, aad: bytes | None, offset: int, flip: int
) -> None:
    native, reference = Native(key), Reference(key)
    sealed = reference.encrypt(nonce, data, aad)
    assert native.encrypt(nonce, data, aad) == sealed
    assert native.encrypt(nonce, memoryview(bytes(offset) + data)[offset:], aad) == sealed
    assert native.decrypt(nonce, memoryview(bytes(offset) + sealed)[offset:], aad) == data
    # one bit flipped anywhere: both refuse it
    bit = flip % (8 * len(sealed))
    forged = bytearray(sealed)
    forged[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(NativeInvalidTag):
        native.decrypt(nonce, bytes(forged), aad)
    with pytest.raises(CryptographyInvalidTag):
        reference.decrypt(nonce, bytes(forged), aad)


@given(data=st.binary(max_size=200), nonce=st.binary(max_size=20))
def test_random_bytes_never_escape_as_anything_but_invalid_tag_or_a_size_error(
    data: bytes, nonce: bytes
) -> None:
    try:
        aead.ChaCha20Poly1305(KEY).decrypt(nonce, data, None)
    except aead.BAD_TAG:
        assert len(nonce) == 12
    except ValueError:
        assert len(nonce) != 12
    else:
        raise AssertionError("random bytes authenticated")


@needs_native
def test_the_native_class_is_chosen_when_built() -> None:
    assert aead.choose() == (aead.NATIVE, Native, NativeInvalidTag)


def test_the_self_test_refuses_a_class_that_seals_wrongly_or_opens_a_forgery() -> None:
    class WrongTag:
        def __init__(self, key: bytes) -> None:
            self.box = Reference(key)

        def encrypt(self, nonce: bytes, data: bytes, aad: bytes | None) -> bytes:
            sealed: bytes = self.box.encrypt(nonce, data, aad)
            return sealed[:-1] + bytes([sealed[-1] ^ 1])

        def decrypt(self, nonce: bytes, data: bytes, aad: bytes | None) -> bytes:
            return self.box.decrypt(nonce, data, aad)

    class OpensAnything(WrongTag):
        def encrypt(self, nonce: bytes, data: bytes, aad: bytes | None) -> bytes:
            return self.box.encrypt(nonce, data, aad)

        def decrypt(self, nonce: bytes, data: bytes, aad: bytes | None) -> bytes:
            return PLAIN

    class Raises:
        def __init__(self, key: bytes) -> None:
            raise RuntimeError("broken build")

    assert aead.self_test(Reference, CryptographyInvalidTag)
    assert not aead.self_test(WrongTag, CryptographyInvalidTag)
    assert not aead.self_test(OpensAnything, CryptographyInvalidTag)
    assert not aead.self_test(Raises, CryptographyInvalidTag)


@pytest.mark.parametrize("module", ["unbuilt", "old build", "broken"])
def test_cryptography_runs_without_a_working_native_class(
    module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stub = types.ModuleType("tidewire._dataplane")
    if module == "broken":
        stub.ChaCha20Poly1305 = lambda key: None  # type: ignore[attr-defined]
        stub.InvalidTag = ValueError  # type: ignore[attr-defined]
    # `from tidewire import _dataplane` reads the package's attribute before sys.modules
    monkeypatch.delattr(tidewire, "_dataplane", raising=False)
    if module == "unbuilt":
        monkeypatch.setitem(sys.modules, "tidewire._dataplane", None)  # ImportError
    else:
        monkeypatch.setitem(sys.modules, "tidewire._dataplane", stub)
        monkeypatch.setattr(tidewire, "_dataplane", stub, raising=False)
    assert aead.choose() == (aead.CRYPTOGRAPHY, Reference, CryptographyInvalidTag)
