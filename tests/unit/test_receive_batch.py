"""Opening the datagrams of one socket read together (`Device.receive_transport_batch`,
protocol/link/transport_receive.py) against opening them one by one.

Three receivers with the same keys (handshakes with fixed keys and seeded randomness):
the native plane opening a read's run in one call, the native plane datagram by
datagram, and the Python path. For any stream a network can deliver (reordered,
repeated, truncated, forged, addressed elsewhere, handshake-looking noise) all three
must return the same results and count the same drops by reason, and the batch must
have taken one native call per run.
"""

from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidewire.node.dataplane import choose, load
from tidewire.protocol.link.constants import REPLAY_WINDOW
from tidewire.protocol.link.crypto import public_key
from tidewire.protocol.link.device import Device
from tidewire.protocol.link.peer import Peer, PeerConfig
from tidewire.protocol.types import UDP, Path

from .helpers import SeededRandom
from .test_fixed_handshake import ALICE, BOB

native = load()
pytestmark = pytest.mark.skipif(
    native is None, reason="tidewire._dataplane is not built (scripts/setup builds it with cargo)"
)
HERE, THERE = Path(UDP, ("192.0.2.1", 51820)), Path(UDP, ("192.0.2.2", 51820))


def pair(factory: Any) -> tuple[Device, Peer, Device]:
    """Alice and Bob after a handshake, `factory` their native session factory (or None)."""
    a = Device(private_key=ALICE, rng=SeededRandom("batch-alice"))
    b = Device(private_key=BOB, rng=SeededRandom("batch-bob"))
    a.native = b.native = factory
    pa = a.add_peer(PeerConfig(public_key=public_key(BOB), endpoint=THERE.address))
    b.add_peer(PeerConfig(public_key=public_key(ALICE)))
    a.encrypt(pa, b"", now=0.0)
    [(init, _)] = a.datagrams_to_send()
    b.receive_datagram(init, HERE, now=0.01)
    [(resp, _)] = b.datagrams_to_send()
    a.receive_datagram(resp, THERE, now=0.02)
    [(keepalive, _)] = a.datagrams_to_send()
    b.receive_datagram(keepalive, HERE, now=0.03)
    return a, pa, b


def stream(draw: st.DrawFn, a: Device, pa: Peer) -> list[bytes]:
    kp = pa.current
    assert kp is not None
    out: list[bytes] = []
    for _ in range(draw(st.integers(1, 50))):
        kp.send_counter = max(
            1, kp.send_counter + draw(st.sampled_from([0, 1, 1, 1, -1, -5, REPLAY_WINDOW + 1]))
        )
        [d] = a.encrypt_batch(pa, [draw(st.binary(max_size=60))], now=1.0)
        assert d is not None
        kind = draw(st.sampled_from(["ok"] * 5 + ["cut", "flip", "index", "noise", "init"]))
        if kind == "cut":
            d = d[: draw(st.integers(0, len(d) - 1))]
        elif kind == "flip":
            i = draw(st.integers(16, len(d) - 1))
            d = d[:i] + bytes([d[i] ^ 0x40]) + d[i + 1 :]
        elif kind == "index":
            d = d[:4] + (int.from_bytes(d[4:8], "little") ^ 1).to_bytes(4, "little") + d[8:]
        elif kind == "noise":
            d = draw(st.binary(max_size=64))
        elif kind == "init":
            d = b"\x01\0\0\0" + draw(st.binary(min_size=144, max_size=144))
        out.append(d)
    return out


def runs(datagrams: list[bytes]) -> int:
    """Runs of consecutive datagrams that look like transport data to one index."""
    keys = [d[:8] if len(d) >= 32 and d[:4] == b"\x04\0\0\0" else None for d in datagrams]
    return sum(1 for i, k in enumerate(keys) if k is not None and (i == 0 or keys[i - 1] != k))


def outcome(results: list[Any]) -> list[Any]:
    return [None if r is None else (r[0].public_key, r[1]) for r in results]


class CountingSession:
    """A native session that counts its `open_batch` calls."""

    calls = 0

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def open_batch(self, datagrams: list[bytes], *, limit: int) -> list[Any]:
        CountingSession.calls += 1
        return list(self.inner.open_batch(datagrams, limit=limit))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


# 100: three handshakes per example; random bytes alone run in test_dataplane_diff.py
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_a_batch_opens_as_one_datagram_at_a_time(data: st.DataObject) -> None:
    factory = choose(None).factory
    assert factory is not None
    a, pa, batched = pair(lambda keys: CountingSession(factory(keys)))
    _, _, single = pair(factory)
    _, _, python = pair(None)
    datagrams = data.draw(st.composite(lambda draw: stream(draw, a, pa))())
    CountingSession.calls = 0
    got = outcome(batched.receive_transport_batch(datagrams, HERE, now=2.0))
    for reference in (single, python):
        want = outcome([reference.receive_datagram(d, HERE, now=2.0) for d in datagrams])
        assert got == want
        assert +batched.drops == +reference.drops
    assert Counter(batched.counters) == Counter(single.counters)
    assert CountingSession.calls <= runs(datagrams)  # one native call per run at most


def test_a_read_of_one_keypair_takes_one_native_call() -> None:
    factory = choose(None).factory
    assert factory is not None
    a, pa, b = pair(lambda keys: CountingSession(factory(keys)))
    datagrams = a.encrypt_batch(pa, [bytes([i]) * 100 for i in range(40)], now=1.0)
    CountingSession.calls = 0
    got = b.receive_transport_batch([d for d in datagrams if d], HERE, now=1.5)
    assert CountingSession.calls == 1
    assert [r[1][:100] for r in got if r] == [bytes([i]) * 100 for i in range(40)]
