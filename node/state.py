"""Durable node state in the state directory: written atomically, never half-written.

Each file is replaced by writing a temporary file beside it, fsyncing it,
renaming it over the old one and fsyncing the directory, so a crash or kill at
any moment leaves either the old content or the new one.

`timestamps.json` keeps the last TAI64N timestamp sent to each peer, so that a
restart, or a router without a real-time clock, never sends an older one. It is
checked whole when loaded (an object of base64 keys to 12-byte hex stamps); a file
that is not is moved aside with a warning, and the node starts from the wall clock.
"""

import base64
import binascii
import json
import logging
import os
from pathlib import Path
from typing import Any

from tidewire.protocol.link.constants import KEY_SIZE, TIMESTAMP_SIZE

log = logging.getLogger("tidewire.state")


def atomic_write(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class TimestampStore:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = directory / "timestamps.json"
        self.stamps: dict[str, str] = {}
        if self.path.exists():
            try:
                self.stamps = _parse(self.path.read_bytes())
            except ValueError as exc:
                # A corrupt file is impossible with atomic writes; if it happens anyway,
                # move it aside rather than lose it, and start from the wall clock.
                aside = self.path.with_suffix(".corrupt")
                self.path.rename(aside)
                log.warning("%s is corrupt (%s); moved to %s", self.path, exc, aside.name)

    def get(self, public_key: bytes) -> bytes | None:
        value = self.stamps.get(base64.b64encode(public_key).decode())
        return bytes.fromhex(value) if value else None

    def put(self, public_key: bytes, timestamp: bytes) -> None:
        self.put_many({public_key: timestamp})

    def put_many(self, stamps: dict[bytes, bytes]) -> None:
        """Record several peers' stamps in one atomic write (blocking: call it off the loop)."""
        for public_key, timestamp in stamps.items():
            self.stamps[base64.b64encode(public_key).decode()] = timestamp.hex()
        atomic_write(self.path, json.dumps(self.stamps, indent=1, sort_keys=True).encode())


def _parse(data: bytes) -> dict[str, str]:
    """The stamps of a timestamps.json file; ValueError saying what is wrong with it."""
    try:
        raw: Any = json.loads(data)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError included
        raise ValueError("not JSON") from None
    if not isinstance(raw, dict):
        raise ValueError("not a JSON object")
    for k, v in raw.items():
        try:
            good_key = len(base64.b64decode(k, validate=True)) == KEY_SIZE
        except (binascii.Error, ValueError):
            good_key = False
        if not good_key:
            raise ValueError(f"{k[:60]!r} is not a base64 public key")
        try:
            good_stamp = isinstance(v, str) and len(bytes.fromhex(v)) == TIMESTAMP_SIZE
        except ValueError:
            good_stamp = False
        if not good_stamp:
            raise ValueError(f"the timestamp of {k} is not {TIMESTAMP_SIZE} bytes of hex")
    return dict(raw)
