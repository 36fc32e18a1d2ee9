"""The native data plane (dataplane/, `tidewire._dataplane`) against the Python path.

For the same keys, counters and inputs both must give byte-identical datagrams and the
same accept/drop decisions with the same reasons. The known answer is the Python path's
own pinned transport message (tests/unit/test_fixed_handshake.py: a handshake with
fixed keys and randomness, its bytes checked against wireguard-go in the lab), sealed
and opened here through the native plane. Skipped only when the module is not built
(scripts/setup builds it when a Rust toolchain is present).
"""

from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from hypothesis import given, settings
from hypothesis import strategies as st

from tidewire.node.dataplane import choose, load, self_test
from tidewire.protocol.link.constants import (
    KEEPALIVE_SIZE,
    REJECT_AFTER_MESSAGES,
    REPLAY_WINDOW,
)
from tidewire.protocol.link.crypto import nonce, public_key
from tidewire.protocol.link.device import Device
from tidewire.protocol.link.messages import HEADER, padded_length
from tidewire.protocol.link.peer import PeerConfig
from tidewire.protocol.link.replay import ReplayWindow
from tidewire.protocol.types import UDP, Path

from .helpers import SeededRandom
from .test_fixed_handshake import ALICE, BOB, TRANSPORT

native = load()
pytestmark = pytest.mark.skipif(
    native is None, reason="tidewire._dataplane is not built (scripts/setup builds it with cargo)"
)

SEND = bytes(range(32))
RECV = bytes(range(100, 132))
LOCAL, REMOTE = 0x11223344, 0x55667788


def python_seal(key: bytes, remote: int, counter: int, packet: bytes, mtu: int | None) -> bytes:
    """protocol/link/device.py's `_seal`, without the peer's bookkeeping."""
    padded = packet + bytes(padded_length(len(packet), mtu) - len(packet))
    return HEADER.pack(4, remote, counter) + ChaCha20Poly1305(key).encrypt(
        nonce(counter), padded, None
    )


class PythonOpener:
    """protocol/link/device.py's `_receive_transport` checks for one keypair, in order."""

    def __init__(self, key: bytes, local: int) -> None:
        self.aead, self.local, self.replay = ChaCha20Poly1305(key), local, ReplayWindow()

    def open(self, data: bytes, limit: int) -> bytes | str:
        if len(data) < KEEPALIVE_SIZE:
            return "transport_short"
        word, receiver, counter = HEADER.unpack_from(data)
        if word != 4:
            return "not_transport"
        if receiver != self.local:
            return "transport_unknown_index"
        if counter >= limit:
            return "transport_expired_keypair"
        if not self.replay.check(counter, limit):
            return "transport_replay"
        try:
            plain = self.aead.decrypt(nonce(counter), data[16:], None)
        except InvalidTag:
            return "transport_decrypt"
        self.replay.accept(counter, limit)
        return plain


def session() -> Any:
    assert native is not None
    return native.Session(send_key=SEND, recv_key=SEND, local_index=LOCAL, remote_index=REMOTE)


packets = st.lists(st.binary(max_size=1500), min_size=1, max_size=20)
mtus = st.one_of(st.none(), st.integers(0, 1500))
near_edges = st.one_of(
    st.integers(0, 20_000),
    st.integers(REJECT_AFTER_MESSAGES - 50, REJECT_AFTER_MESSAGES - 21),
    st.integers(2**40, 2**40 + 100),
)


@settings(max_examples=200, deadline=None)
@given(packets=packets, counter=near_edges, mtu=mtus)
def test_sealed_batches_are_byte_identical(
    packets: list[bytes], counter: int, mtu: int | None
) -> None:
    s = session()
    got = s.seal_batch(packets, counter=counter, mtu=mtu)
    want = [python_seal(SEND, REMOTE, counter + i, p, mtu) for i, p in enumerate(packets)]
    assert got == want


def _stream(draw: st.DrawFn) -> list[bytes]:
    """Datagrams a hostile or lossy network delivers: sealed ones with counters that walk
    forward, jump past and back across the window's edge and repeat, some truncated,
    forged or addressed elsewhere, and random bytes."""
    out: list[bytes] = []
    c = draw(st.integers(0, 100))
    for _ in range(draw(st.integers(1, 40))):
        c = max(
            0,
            c
            + draw(
                st.one_of(
                    st.integers(-3, 3),
                    st.sampled_from(
                        [REPLAY_WINDOW, REPLAY_WINDOW + 1, -REPLAY_WINDOW, -REPLAY_WINDOW - 1]
                    ),
                    st.integers(-9000, 9000),
                )
            ),
        )
        c = min(c, REJECT_AFTER_MESSAGES + 2)
        d = python_seal(SEND, LOCAL, c, draw(st.binary(max_size=80)), None)
        kind = draw(st.sampled_from(["ok", "ok", "ok", "cut", "flip", "index", "type", "noise"]))
        if kind == "cut":
            d = d[: draw(st.integers(0, len(d) - 1))]
        elif kind == "flip":
            i = draw(st.integers(16, len(d) - 1))
            d = d[:i] + bytes([d[i] ^ draw(st.integers(1, 255))]) + d[i + 1 :]
        elif kind == "index":
            d = d[:4] + (LOCAL ^ 1).to_bytes(4, "little") + d[8:]
        elif kind == "type":
            d = bytes([draw(st.integers(0, 255))]) + d[1:]
        elif kind == "noise":
            d = draw(st.binary(max_size=100))
        out.append(d)
    return out


# 100: a differential property; the random-bytes one below keeps its 300
@settings(max_examples=100, deadline=None)
@given(data=st.data(), limit=st.sampled_from([REJECT_AFTER_MESSAGES, 5000]))
def test_open_decides_as_the_python_path(data: st.DataObject, limit: int) -> None:
    stream = data.draw(st.composite(_stream)())
    ref, s = PythonOpener(SEND, LOCAL), session()
    got = []
    for d in stream:  # one at a time and then in a batch: both must agree with Python
        got += s.open_batch([d], limit=limit)
    want = [ref.open(d, limit) for d in stream]
    assert got == want
    s2, ref2 = session(), PythonOpener(SEND, LOCAL)
    assert s2.open_batch(stream, limit=limit) == [ref2.open(d, limit) for d in stream]
    for c in range(0, 20_000, 97):
        assert s2.replay_check(c, limit) == ref2.replay.check(c, limit)
    assert s.rx_counts == s2.rx_counts == (ref2.replay.lost, ref2.replay.accepted)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=30))
def test_random_bytes_are_dropped_with_a_reason(datagrams: list[bytes]) -> None:
    reasons = session().open_batch(datagrams, limit=REJECT_AFTER_MESSAGES)
    assert all(isinstance(r, str) for r in reasons)


def test_the_pinned_transport_message_seals_and_opens_natively() -> None:
    """A handshake with fixed keys (test_fixed_handshake.py), then the same 64-byte packet
    sealed by the native plane gives the pinned bytes, and the other end opens it natively."""
    assert native is not None
    choice = choose(None)
    a = Device(private_key=ALICE, rng=SeededRandom("fixed-alice"), wall_offset=1_700_000_000.0)
    b = Device(private_key=BOB, rng=SeededRandom("fixed-bob"), wall_offset=1_700_000_000.0)
    a.native = b.native = choice.factory
    psk = bytes(range(32))
    pa = a.add_peer(
        PeerConfig(public_key=public_key(BOB), endpoint=("192.0.2.2", 51820), preshared_key=psk)
    )
    pb = b.add_peer(PeerConfig(public_key=public_key(ALICE), preshared_key=psk))
    here, there = Path(UDP, ("192.0.2.1", 51820)), Path(UDP, ("192.0.2.2", 51820))
    a.encrypt(pa, b"", now=0.0)  # staged: starts the handshake
    [(init, _)] = a.datagrams_to_send()
    b.receive_datagram(init, here, now=0.01)
    [(resp, _)] = b.datagrams_to_send()
    a.receive_datagram(resp, there, now=0.02)
    [(keepalive, _)] = a.datagrams_to_send()  # the staged empty packet, counter 0
    assert b.receive_datagram(keepalive, here, now=0.025) is None
    assert pa.current is not None and pa.current.native is not None
    # the pinned message was the first counter, which the keepalive took from the
    # session's one counter: seal it again with counter 0 directly
    [data] = pa.current.native.seal_batch([bytes(range(64))], counter=0, mtu=a.mtu)
    assert data.hex() == TRANSPORT
    assert pa.current.native.send_counter == 1 and pa.current.send_counter == 1
    # counter 0 was the keepalive's: the native window refuses it as a replay
    assert b.receive_datagram(data, here, now=0.03) is None
    assert b.drops["transport_replay"] == 1
    [again] = a.encrypt_batch(pa, [bytes(range(64))], now=0.04)
    assert again is not None and int.from_bytes(again[8:16], "little") == 1
    assert pa.current.native.send_counter == 2 and pa.current.send_counter == 2
    got = b.receive_datagram(again, here, now=0.04)
    assert got is not None and got[0] is pb and got[1] == bytes(range(64))


def test_batches_fall_back_to_the_python_path_without_a_native_session() -> None:
    a = Device(private_key=ALICE, rng=SeededRandom("a"))
    pa = a.add_peer(PeerConfig(public_key=public_key(BOB), endpoint=("192.0.2.2", 51820)))
    assert a.encrypt_batch(pa, [b"x", b"y"], now=0.0) == [None, None]  # no session: staged
    assert list(pa.staged) == [b"x", b"y"]


def test_the_self_test_passes_and_catches_a_wrong_module() -> None:
    assert self_test(native) is None

    class Broken:
        REPLAY_WINDOW = REPLAY_WINDOW

        class Session:
            def __init__(self, **_: object) -> None:
                pass

            def seal_batch(self, packets: list[bytes], **_: object) -> list[bytes]:
                return [b"\x04" + p for p in packets]

    assert self_test(Broken) == "a sealed packet differs from the Python path's"
    assert choose("python").name == "python"


def test_buffers_other_than_bytes_seal_as_bytes_do() -> None:
    s = session()
    want = s.seal_batch([b"abc", b"de"], counter=3, mtu=None)
    assert s.seal_batch([bytearray(b"abc"), memoryview(b"de")], counter=3, mtu=None) == want
    with pytest.raises(TypeError):
        s.seal_batch(["text"], counter=0, mtu=None)
