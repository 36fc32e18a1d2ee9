"""Keys as `wg` prints them: 32 bytes in standard base64 (44 characters).

Decoding errors are local: they name the field the key came from, so config and
CLI errors can say exactly what is wrong.
"""

import base64
import binascii

from .errors import LocalProtocolError
from .link.constants import KEY_SIZE
from .link.crypto import clamp, public_key


def decode_key(text: str, *, field: str) -> bytes:
    """Decode a base64 key; raise LocalProtocolError naming `field` if it is not one."""
    stripped = text.strip()
    if len(stripped) != 44 or not stripped.endswith("="):
        raise LocalProtocolError(
            f"{field}: a key is 44 characters of base64 ending in '=', "
            f"got {len(stripped)} characters"
        )
    try:
        raw = base64.b64decode(stripped, validate=True)
    except (binascii.Error, ValueError):
        raise LocalProtocolError(f"{field}: not valid base64") from None
    if len(raw) != KEY_SIZE:
        raise LocalProtocolError(f"{field}: a key is {KEY_SIZE} bytes, got {len(raw)}")
    return raw


def encode_key(raw: bytes) -> str:
    if len(raw) != KEY_SIZE:
        raise LocalProtocolError(f"a key is {KEY_SIZE} bytes, got {len(raw)}")
    return base64.b64encode(raw).decode("ascii")


def private_from_seed(seed: bytes) -> bytes:
    """A private key from 32 random bytes, clamped like `wg genkey`."""
    if len(seed) != KEY_SIZE:
        raise LocalProtocolError(f"a key seed is {KEY_SIZE} bytes, got {len(seed)}")
    return clamp(seed)


def derive_public(private: bytes) -> bytes:
    if len(private) != KEY_SIZE:
        raise LocalProtocolError(f"a private key is {KEY_SIZE} bytes, got {len(private)}")
    return public_key(private)


def short(raw: bytes) -> str:
    """The first 8 characters of a key's base64, for logs ("AbCdEfGh…")."""
    return base64.b64encode(raw).decode("ascii")[:8] + "…"
