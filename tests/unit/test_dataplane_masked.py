"""The masked skin in the native threads (dataplane/src/mask.rs) against the Python skin
(protocol/skins/masked.py).

- Sending: a sender installed with a skin's key and padding sizes masks exactly as
  `MaskedSkin.wrap` does (byte for byte when no range pads the datagram), pads to a
  size within a range that reaches it, and every datagram unwraps under the Python
  skin to the datagram the unmasked sender seals with the same counter.
- Receiving: for datagrams the Python skin wrapped (padded, under the listener's key or
  our own), mutated ones and random bytes, the thread takes exactly what the skin's
  opener takes as a transport datagram, in the form it unwraps to, hands back wrappers
  as they came ("wire"), and drops the rest (decoys, garbage) counted as the opener
  counts them, so a flood of garbage costs no Python; inner packets of an installed
  masked session reach the TUN, and a masked session's datagram on plain UDP (or a
  plain one on the masked socket) is not opened.
"""

from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidewire.node.transports.masked import MaskedTransport
from tidewire.protocol.skins.masked import MaskedSkin

from .helpers import SeededRandom
from .test_dataplane_diff import LOCAL, RECV, SEND, python_seal
from .test_dataplane_rx import HOST, PEER, PORT, inbound, ipv4, native

pytestmark = pytest.mark.skipif(
    native is None or not hasattr(native.Inbound, "set_masks"),
    reason="tidewire._dataplane with the masked skin in its threads is not built",
)

LISTENER_PUBLIC, OWN_PUBLIC = bytes(range(7, 39)), bytes(range(50, 82))
LISTENER = MaskedSkin(LISTENER_PUBLIC)  # the key of the listener we dial at HOST
OWN = MaskedSkin(OWN_PUBLIC)  # ours, when we listen
UNPADDED = ((32, 33, 1),)  # no datagram of the link is this small: never padded
REMOTE = 9


def outbound(sizes: Any, mask: bytes | None = LISTENER.hp_key) -> Any:
    assert native is not None
    tx = native.Outbound(tun_fd=-1, vnet=False, tso=False, v4=-1, v6=-1, gso=False, limit=1 << 60)
    session = native.Session(send_key=SEND, recv_key=RECV, local_index=LOCAL, remote_index=REMOTE)
    tx.install(
        session, peer=PEER, host=HOST, port=PORT, ttl=60.0, carry=1420, mask=mask, sizes=sizes
    )
    tx.set_routes([(4, bytes(12) + bytes([10, 0, 0, 1]), 32, PEER)])
    return tx


def to_peer(payload: bytes) -> bytes:
    """An IPv4 UDP packet to 10.0.0.1 (the installed route)."""
    return ipv4("10.9.1.2", 17, payload)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 1400), min_size=1, max_size=6))
def test_the_send_thread_masks_as_the_python_skin_does(lengths: list[int]) -> None:
    tx = outbound(list(UNPADDED))
    for counter, n in enumerate(lengths):
        packet = to_peer(bytes(n % 251 for _ in range(n)))
        [(host, port, wire, _ecn)] = tx.handle(packet, False, False)
        plain = python_seal(SEND, REMOTE, counter, packet, None)
        assert (host, port) == (HOST, PORT)
        unpadded = MaskedSkin(LISTENER.responder_public, sizes=UNPADDED)
        assert wire == unpadded.wrap(plain, rng=SeededRandom("never used"))
        assert LISTENER.unwrap(wire) == plain


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 1400), min_size=1, max_size=6),
    st.lists(
        st.tuples(st.integers(32, 1500), st.integers(0, 400), st.integers(1, 9)),
        min_size=1,
        max_size=4,
    ),
)
def test_the_send_thread_pads_within_the_ranges_and_the_skin_unwraps_it(
    lengths: list[int], ranges: list[tuple[int, int, int]]
) -> None:
    sizes = [(low, min(low + extra, 65535), weight) for low, extra, weight in ranges]
    tx = outbound(sizes)
    for counter, n in enumerate(lengths):
        packet = to_peer(bytes(n))
        [(_, _, wire, _)] = tx.handle(packet, False, False)
        plain = python_seal(SEND, REMOTE, counter, packet, None)
        fit = [(low, high) for low, high, _ in sizes if high >= len(plain)]
        if fit:
            assert any(max(low, len(plain)) <= len(wire) <= high for low, high in fit)
        else:
            assert len(wire) == len(plain)
        assert LISTENER.unwrap(wire) == plain


def test_padding_is_random_and_differs_between_datagrams() -> None:
    tx = outbound([(600, 1200, 1)])
    wires = [tx.handle(to_peer(bytes(10)), False, False)[0][2] for _ in range(8)]
    assert len({len(w) for w in wires}) > 1
    tails = [w[80:] for w in wires]  # past the sealed datagram: the padding
    assert len(set(tails)) == len(tails) and all(len(set(t)) > 16 for t in tails)


def test_bad_padding_sizes_and_keys_are_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="sizes"):
        outbound([])
    with pytest.raises(ValueError, match="sizes"):
        outbound([(40, 20, 1)])  # low > high: draw could not pick in it
    with pytest.raises(ValueError, match="sizes"):
        outbound([(40, 60, 0)])
    with pytest.raises(ValueError, match="16 bytes"):
        outbound(list(UNPADDED), mask=b"short")


def masked_inbound(*, listener: bool = True, own: bool = True, masked: bool = True) -> Any:
    rx = inbound()  # its session at HOST:PORT, plain UDP
    assert native is not None
    session = native.Session(send_key=SEND, recv_key=RECV, local_index=LOCAL, remote_index=9)
    rx.install(session, peer=PEER, host=HOST, port=PORT, ttl=60.0, masked=masked)
    rx.set_masks([(HOST, PORT, LISTENER.hp_key)] if listener else [], OWN.hp_key if own else None)
    return rx


def opened_by_python(data: bytes, *, listener: bool, own: bool) -> tuple[str, bytes]:
    """What the thread should make of `data` from HOST:PORT, by the skin's own unwrap:
    ("transport", the link datagram) if it unwraps to one; ("wire", data) if it is a
    wrapper, or its header unmasks to a handshake type under a key (it may authenticate
    in the opener: the thread does not open wrappers); else ("dropped", data)."""
    for skin, used in ((LISTENER, listener), (OWN, own)):
        if not used:
            continue
        out = skin.unwrap(data)
        if out is not None:
            return ("transport", out) if out[0] == 4 else ("wire", data)
        if len(data) >= 32:
            kind = (int.from_bytes(data[:16], "little") ^ skin._mask(data[16:32])) & 0xFF
            if 1 <= kind <= 3:
                return "wire", data
    return "dropped", data


def skin_opener(*, listener: bool, own: bool) -> tuple[Any, Counter[str]]:
    """node/transports/masked.py's opener with these keys, and the drops it counts."""
    drops: Counter[str] = Counter()
    transport = MaskedTransport(drops, own_public=OWN_PUBLIC)
    if listener:
        transport.register((HOST, PORT), LISTENER_PUBLIC)
    transport.listening = own
    return transport.opener(), drops


@st.composite
def wire_datagrams(draw: Any) -> bytes:
    kind = draw(st.sampled_from(["sealed", "forged", "random", "handshake"]))
    skin: MaskedSkin = draw(st.sampled_from([LISTENER, OWN]))
    rng = SeededRandom(str(draw(st.integers(0, 1 << 30))))
    if kind == "random":
        random: bytes = draw(st.binary(max_size=300))
        return random
    if kind == "handshake":
        body: bytes = draw(st.binary(min_size=144, max_size=144))
        return skin.wrap(bytes([1, 0, 0, 0]) + body, rng=rng)
    counter = draw(st.integers(0, 50))
    plain = python_seal(RECV, LOCAL, counter, to_peer(draw(st.binary(max_size=200))), None)
    if kind == "forged":  # the right header, another body: the AEAD refuses it
        plain = plain[:16] + draw(st.binary(min_size=16, max_size=200))
    wire = bytearray(skin.wrap(plain, rng=rng))
    if draw(st.booleans()):
        wire[draw(st.integers(0, len(wire) - 1))] ^= 1 << draw(st.integers(0, 7))
    return bytes(wire)


@settings(max_examples=300, deadline=None)
@given(st.lists(wire_datagrams(), min_size=1, max_size=5), st.booleans(), st.booleans())
def test_the_receive_thread_takes_what_the_skin_opens_and_hands_back_the_rest(
    datagrams: list[bytes], listener: bool, own: bool
) -> None:
    rx = masked_inbound(listener=listener, own=own)
    tun = rx.handle(datagrams, HOST, PORT, 0, masked=True)
    back = rx.take(1 << 10)
    counted = Counter(dict(rx.drops()))
    refused = Counter({r: n for r, n in counted.items() if r.startswith("masked_")})
    wires = [item[3] for item in back if item[0] == "wire"]
    expected = [opened_by_python(d, listener=listener, own=own) for d in datagrams]
    # wrappers come back as they came; what no key takes is dropped in the thread
    assert wires == [d for kind, d in expected if kind == "wire"]
    assert all(item[8] == "masked" for item in back)
    assert refused.total() == sum(kind == "dropped" for kind, _ in expected)
    # ... counted as the skin's opener counts it: its drops over all the datagrams are
    # the thread's plus its own over what the thread handed back
    opener, everything = skin_opener(listener=listener, own=own)
    for d in datagrams:
        opener(d, (HOST, PORT))
    opener, handed = skin_opener(listener=listener, own=own)
    for d in wires:
        opener(d, (HOST, PORT))
    assert everything == refused + handed
    # the rest are opened as link datagrams: in the TUN, dropped or handed back
    link = [d for kind, d in expected if kind == "transport"]
    drops = counted.total() - refused.total()
    assert len(tun) + drops + len(back) - len(wires) == len(link)
    # what comes back unopened is in the form the skin unwraps it to
    assert all(item[3] in link for item in back if item[0] == "raw")


def test_a_masked_session_opens_its_datagrams_to_the_tun() -> None:
    rx = masked_inbound()
    packets = [to_peer(bytes([i]) * 300) for i in range(3)]
    sealed = [python_seal(RECV, LOCAL, c, p, None) for c, p in enumerate(packets)]
    wires = [
        LISTENER.wrap(sealed[0], rng=SeededRandom("a")),
        OWN.wrap(sealed[1], rng=SeededRandom("b")),  # our own key: a client of ours there
        LISTENER.wrap(sealed[2], rng=SeededRandom("c")),
    ]
    assert rx.handle(wires, HOST, PORT, 0, masked=True) == packets
    assert rx.take(10) == []
    # the same session's datagram on plain UDP is not opened here: Python's path
    plain = python_seal(RECV, LOCAL, 7, packets[0], None)
    assert rx.handle([plain], HOST, PORT, 0) == []
    [item] = rx.take(10)
    assert item[:2] == ("raw", "endpoint") and item[8] == "udp"


def test_a_plain_session_does_not_open_masked_datagrams() -> None:
    rx = masked_inbound(masked=False)
    sealed = python_seal(RECV, LOCAL, 0, to_peer(b"x" * 40), None)
    assert (
        rx.handle([LISTENER.wrap(sealed, rng=SeededRandom("a"))], HOST, PORT, 0, masked=True) == []
    )
    [item] = rx.take(10)
    assert item[:2] == ("raw", "endpoint") and item[3] == sealed and item[8] == "masked"
