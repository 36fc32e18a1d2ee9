"""Which data plane runs: the native one (dataplane/, the Rust module `tidewire._dataplane`)
or the Python path, and why.

The native plane is optional: it loads if it was built (scripts/setup builds it when a
Rust toolchain is there) and passes a self-test at start, sealing and opening a packet
with fixed keys and comparing the bytes with the Python path's. If it does not, the
node says so in one line and runs the Python path. With it, every keypair the link
makes carries a native session (protocol/link/keypair.py), which seals the outbound
batches (`Device.encrypt_batch`) and opens transport datagrams with its replay window.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tidewire.node.core.gro import GSO_TCPV4, NEEDS_CSUM, VNET_HDR, coalesce
from tidewire.node.core.gso import split
from tidewire.protocol.link import aead
from tidewire.protocol.link.constants import REPLAY_WINDOW
from tidewire.protocol.link.handshake import SessionKeys
from tidewire.protocol.link.messages import HEADER, padded_length

NATIVE = "native"
PYTHON = "python"
CHOICES = (NATIVE, PYTHON)

_KEY_A = bytes(range(32))
_KEY_B = bytes(range(32, 64))
# a TCP super-packet as the TUN hands it over: 10.0.0.2:40000 -> 10.0.0.1:5201, ACK,
# 3000 bytes of payload in segments of 1000
_PAYLOAD = bytes(range(256)) * 11 + bytes(184)
_SUPER = (
    VNET_HDR.pack(NEEDS_CSUM, GSO_TCPV4, 40, 1000, 20, 16)
    + bytes.fromhex("45000be0000140004006" "0000" "0a000002" "0a000001")
    + bytes.fromhex("9c401451" "00000001" "00000000" "5010" "0200" "0000" "0000")
    + _PAYLOAD
)


@dataclass(frozen=True, slots=True)
class Choice:
    name: str  # NATIVE or PYTHON
    why: str  # one sentence: why this one runs
    factory: Callable[[SessionKeys], Any] | None  # the session factory for the Device
    # cuts a TUN read (virtio-net header first) into packets, or names why it cannot
    split: Callable[[memoryview], list[bytes] | str] | None = None
    # (tun fd, inner packets) -> (frames written, full, failed): coalesced and written
    write_tun: Callable[[int, list[bytes]], tuple[int, int, int]] | None = None
    module: Any = None  # the native module itself (its receive thread: dataplane_loop.py)


def load() -> Any:
    """The native module, or None if it was not built."""
    try:
        from tidewire import _dataplane  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _dataplane


def self_test(module: Any) -> str | None:
    """None if the module seals and opens as the Python path does; else what differs."""
    try:
        if module.REPLAY_WINDOW != REPLAY_WINDOW:
            return f"its replay window is {module.REPLAY_WINDOW}, not {REPLAY_WINDOW}"
        session = module.Session(send_key=_KEY_A, recv_key=_KEY_A, local_index=7, remote_index=7)
        packet = bytes(range(45))
        sealed = session.seal_batch([packet], counter=5, mtu=None)
        padded = packet + bytes(padded_length(len(packet)) - len(packet))
        expected = HEADER.pack(4, 7, 5) + aead.ChaCha20Poly1305(_KEY_A).encrypt(
            bytes(4) + (5).to_bytes(8, "little"), padded, None
        )
        if sealed != [expected]:
            return "a sealed packet differs from the Python path's"
        opened = session.open_batch([expected, expected], limit=1 << 63)
        if opened != [padded, "transport_replay"]:
            return "opening a packet differs from the Python path"
        segments = split(_SUPER)
        if module.split_tso(_SUPER) != segments:
            return "cutting a TCP super-packet differs from the Python path"
        if module.coalesce([packet, *segments]) != coalesce([packet, *segments]):
            return "coalescing TUN writes differs from the Python path"
    except Exception as exc:  # a broken build must not stop the node
        return f"{type(exc).__name__}: {exc}"
    return None


def choose(wanted: str | None) -> Choice:
    """The data plane to run: `wanted` ("native", "python" or None for the default).

    Choosing the Python path makes the link's keypairs use `cryptography`'s AEAD from
    then on, the fastest per packet (protocol/link/aead.py)."""
    if wanted == PYTHON:
        return _python("asked for with --dataplane python")
    module = load()
    if module is None:
        return _python("the native module tidewire._dataplane is not built")
    failure = self_test(module)
    if failure is not None:
        return _python(f"the native module failed its self-test ({failure})")

    def factory(keys: SessionKeys) -> Any:
        return module.Session(
            send_key=keys.send,
            recv_key=keys.recv,
            local_index=keys.local_index,
            remote_index=keys.remote_index,
        )

    how = "asked for with --dataplane native" if wanted == NATIVE else "built and self-tested"
    return Choice(NATIVE, how, factory, module.split_tso, module.write_tun, module)


def _python(why: str) -> Choice:
    aead.use_cryptography()
    return Choice(PYTHON, why, None)
