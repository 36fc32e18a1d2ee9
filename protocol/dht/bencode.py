"""Bencoding (BEP 3), strict, for messages from strangers on the Mainline DHT.

`decode` takes a whole datagram and returns its value or raises `BencodeError`
(a `RemoteProtocolError`, so the receive path counts it as a drop). It refuses what a
careful node refuses: trailing bytes, integers with leading zeros or "-0", dictionary
keys that are not strings or appear twice, nesting deeper than `MAX_DEPTH`, and
lengths that run past the end. Key order is not enforced: BEP 3 asks encoders to
sort, and clients in the wild do not all do it, so refusing would only lose peers.
Strings decode to `bytes`.

`spans` gives the exact bytes of each value of one dictionary: BEP 44 signs the
value `v` "verbatim, as it appeared in the message", which decoding and re-encoding
need not reproduce for a stranger's message.
"""

from collections.abc import Mapping, Sequence

from ..errors import RemoteProtocolError

MAX_DEPTH = 32
MAX_INT_DIGITS = 20  # a 64-bit integer and its sign; longer is refused before int()

Value = int | bytes | list["Value"] | dict[bytes, "Value"]


class BencodeError(RemoteProtocolError):
    def __init__(self, detail: str) -> None:
        super().__init__("bencode", detail)


class Raw(bytes):
    """Bytes that are bencoded already (a `v` passed on verbatim): encoded as they are."""


def encode(value: object) -> bytes:
    """Bencode ints, bytes (str is encoded as UTF-8), lists and dicts with bytes or str
    keys (sorted as raw strings, as BEP 3 requires)."""
    out: list[bytes] = []
    _encode(value, out)
    return b"".join(out)


def _encode(value: object, out: list[bytes]) -> None:
    if isinstance(value, bool):
        raise TypeError("bencode has no booleans")
    if isinstance(value, Raw):
        out.append(bytes(value))
    elif isinstance(value, int):
        out.append(b"i%de" % value)
    elif isinstance(value, bytes | bytearray | memoryview):
        b = bytes(value)
        out.append(b"%d:" % len(b))
        out.append(b)
    elif isinstance(value, str):
        _encode(value.encode(), out)
    elif isinstance(value, Mapping):
        keyed = ((k.encode() if isinstance(k, str) else bytes(k), v) for k, v in value.items())
        items = sorted(keyed, key=lambda kv: kv[0])
        out.append(b"d")
        for k, v in items:
            _encode(k, out)
            _encode(v, out)
        out.append(b"e")
    elif isinstance(value, Sequence):
        out.append(b"l")
        for v in value:
            _encode(v, out)
        out.append(b"e")
    else:
        raise TypeError(f"cannot bencode {type(value).__name__}")


def decode(data: bytes) -> Value:
    value, end = _decode(data, 0, 0)
    if end != len(data):
        raise BencodeError("trailing bytes")
    return value


def spans(data: bytes, start: int) -> dict[bytes, tuple[int, int]]:
    """The (start, end) offsets of each value of the dictionary that begins at `start`
    in `data` (already validated by `decode`)."""
    if data[start : start + 1] != b"d":
        raise BencodeError("not a dictionary")
    out: dict[bytes, tuple[int, int]] = {}
    i = start + 1
    while data[i : i + 1] != b"e":
        key, i = _string(data, i)
        _, end = _decode(data, i, 1)
        out[key] = (i, end)
        i = end
    return out


def _decode(data: bytes, i: int, depth: int) -> tuple[Value, int]:
    if depth > MAX_DEPTH:
        raise BencodeError("nested too deeply")
    c = data[i : i + 1]
    if c == b"i":
        end = data.find(b"e", i + 1, i + 2 + MAX_INT_DIGITS)
        if end < 0:
            raise BencodeError("unterminated integer")
        digits = data[i + 1 : end]
        body = digits[1:] if digits[:1] == b"-" else digits
        if not body.isdigit() or not body.isascii():
            raise BencodeError("bad integer")
        if (body[:1] == b"0" and len(body) > 1) or digits == b"-0":
            raise BencodeError("integer not in canonical form")
        return int(digits), end + 1
    if c == b"l":
        items: list[Value] = []
        i += 1
        while data[i : i + 1] != b"e":
            if i >= len(data):
                raise BencodeError("unterminated list")
            v, i = _decode(data, i, depth + 1)
            items.append(v)
        return items, i + 1
    if c == b"d":
        d: dict[bytes, Value] = {}
        i += 1
        while data[i : i + 1] != b"e":
            if i >= len(data):
                raise BencodeError("unterminated dictionary")
            key, i = _string(data, i)
            if key in d:
                raise BencodeError("a dictionary key twice")
            d[key], i = _decode(data, i, depth + 1)
        return d, i + 1
    if c.isdigit():
        return _string(data, i)
    raise BencodeError("unexpected byte" if c else "truncated")


def _string(data: bytes, i: int) -> tuple[bytes, int]:
    colon = data.find(b":", i, i + 8)
    if colon < 0:
        raise BencodeError("bad string length")
    digits = data[i:colon]
    if not digits.isdigit() or not digits.isascii() or (digits[:1] == b"0" and len(digits) > 1):
        raise BencodeError("bad string length")
    end = colon + 1 + int(digits)
    if end > len(data):
        raise BencodeError("string runs past the end")
    return data[colon + 1 : end], end
