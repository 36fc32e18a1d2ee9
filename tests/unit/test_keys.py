"""Keys in wg's base64 format; errors are local and name the field."""

import base64

import pytest

from tidewire.protocol.errors import LocalProtocolError
from tidewire.protocol.keys import decode_key, derive_public, encode_key, private_from_seed


def test_round_trip() -> None:
    raw = bytes(range(32))
    assert decode_key(encode_key(raw), field="PublicKey") == raw


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "44 characters"),
        ("abc", "44 characters"),
        ("!" * 43 + "=", "not valid base64"),
        (base64.b64encode(bytes(31)).decode(), "32 bytes, got 31"),
    ],
)
def test_bad_keys_name_the_field(text: str, fragment: str) -> None:
    with pytest.raises(LocalProtocolError) as err:
        decode_key(text, field="[Peer] PublicKey")
    assert str(err.value).startswith("[Peer] PublicKey: ")
    assert fragment in str(err.value)


def test_wg_genkey_clamping_and_public_key() -> None:
    # RFC 7748 section 6.1: Alice's private key (already clamped by X25519) and public key.
    alice = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    priv = private_from_seed(alice)
    assert priv[0] & 7 == 0 and priv[31] & 0x80 == 0 and priv[31] & 0x40
    assert derive_public(priv).hex() == (
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    )
