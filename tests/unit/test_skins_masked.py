"""The masked skin (protocol/skins/masked.py): round trips, header protection against an
independent computation (RFC 9001 section 5.4 is the model), hostile input, and that
nothing at a fixed offset or size gives WireGuard away."""

import hashlib
from collections import Counter

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from tidewire.protocol.errors import LocalProtocolError
from tidewire.protocol.link.constants import (
    COOKIE_REPLY_SIZE,
    INITIATION_SIZE,
    MESSAGE_COOKIE_REPLY,
    MESSAGE_INITIATION,
    MESSAGE_RESPONSE,
    MESSAGE_TRANSPORT,
    RESPONSE_SIZE,
)
from tidewire.protocol.link.messages import message_type
from tidewire.protocol.skins.masked import (
    HANDSHAKE_OVERHEAD,
    MaskedSkin,
    PaddingSizes,
)
from tidewire.protocol.types import Endpoint

from .helpers import SeededRandom, keypair
from .sim import Sim

RESPONDER = keypair("bob")[1]
OTHER = keypair("carol")[1]
SKIN = MaskedSkin(RESPONDER)
SIZES = {MESSAGE_INITIATION: INITIATION_SIZE, MESSAGE_RESPONSE: RESPONSE_SIZE}
SIZES[MESSAGE_COOKIE_REPLY] = COOKIE_REPLY_SIZE


def handshake(kind: int, rng: SeededRandom) -> bytes:
    return kind.to_bytes(4, "little") + rng(SIZES[kind] - 4)


def transport(
    size: int, rng: SeededRandom, *, receiver: int = 0x01020304, counter: int = 0
) -> bytes:
    head = MESSAGE_TRANSPORT.to_bytes(4, "little") + receiver.to_bytes(4, "little")
    return head + counter.to_bytes(8, "little") + rng(size - 16)


class SkinnedSim(Sim):
    """The fake link with every datagram carried through the masked skin: `wire` keeps
    what an observer sees, the receiving device gets what `unwrap` returns."""

    def __init__(self) -> None:
        super().__init__()
        self.skin_rng = SeededRandom("wire")
        self.wire: list[bytes] = []
        self.skins: dict[Endpoint, MaskedSkin] = {}

    def transmit(self, src: Endpoint, dst: Endpoint, data: bytes) -> None:
        skin = self.skins[dst] if dst in self.skins else self.skins[src]
        wire = skin.wrap(data, rng=self.skin_rng)
        self.wire.append(wire)
        unwrapped = skin.unwrap(wire)
        assert unwrapped == data
        super().transmit(src, dst, unwrapped)


def test_a_handshake_cookie_and_data_through_the_skin() -> None:
    sim = SkinnedSim()
    a = sim.node("alice", ("192.0.2.1", 51820))
    b = sim.node("bob", ("198.51.100.2", 51820))
    sim.connect(a, b)
    sim.skins[b.addr] = MaskedSkin(b.device.public_key)  # bob is the responder
    b.under_load = True  # so a cookie reply crosses too
    sim.send(a, b, b"\x45" + bytes(39))
    sim.run_until(1.0)
    b.under_load = False
    sim.run_until(7.0)
    sim.send(b, a, b"\x45" + bytes(59))
    sim.run_until(8.0)
    kinds = Counter(s.kind for s in sim.log)
    assert set(kinds) == {1, 2, 3, 4}, kinds
    assert b.received and a.received
    inits = [w for w, s in zip(sim.wire, sim.log, strict=True) if s.kind == MESSAGE_INITIATION]
    assert all(len(w) >= INITIATION_SIZE + HANDSHAKE_OVERHEAD for w in inits)


@pytest.mark.parametrize("kind", [MESSAGE_INITIATION, MESSAGE_RESPONSE, MESSAGE_COOKIE_REPLY])
def test_handshake_messages_round_trip(kind: int) -> None:
    rng = SeededRandom(f"hs{kind}")
    for _ in range(50):
        message = handshake(kind, rng)
        wire = SKIN.wrap(message, rng=rng)
        assert len(wire) >= len(message) + HANDSHAKE_OVERHEAD
        assert SKIN.unwrap(wire) == message


def test_transport_datagrams_of_every_size_round_trip() -> None:
    rng = SeededRandom("sizes")
    for size in [*range(32, 1600), 9000, 65535 + 32]:
        datagram = transport(size, rng, counter=size)
        wire = SKIN.wrap(datagram, rng=rng)
        assert len(wire) >= size
        assert SKIN.unwrap(wire) == datagram


def test_a_datagram_larger_than_every_range_is_not_padded() -> None:
    rng = SeededRandom("big")
    datagram = transport(1400, rng)
    assert len(MaskedSkin(RESPONDER, sizes=[(64, 1232, 1)]).wrap(datagram, rng=rng)) == 1400


def test_header_protection_known_answer() -> None:
    """RFC 9001 section 5.4.3's construction: mask = AES-128-ECB(hp_key, sample), computed
    here without the skin, with hp_key = BLAKE2s-128("tidewire masked hp v1" || S_pub)."""
    public = bytes(range(32))
    sample = bytes(range(0xA0, 0xB0))
    hp_key = hashlib.blake2s(b"tidewire masked hp v1" + public, digest_size=16).digest()
    assert hp_key.hex() == "0582f5d5493498ddfc02288a688b3e97"
    mask = Cipher(algorithms.AES(hp_key), modes.ECB()).encryptor().update(sample)
    assert mask.hex() == "0ea6dd6916a79e3106a06dd54328e7c5"
    # Type 4, receiver 0x11223344, counter 7, ciphertext starting with the sample; the
    # reserved bytes carry the length 48 (0x30) before masking.
    datagram = bytes.fromhex("04000000443322110700000000000000") + sample + bytes(16)
    wire = MaskedSkin(public, sizes=[(32, 32, 1)]).wrap(datagram, rng=bytes)
    plain = bytes.fromhex("04300000443322110700000000000000")
    assert wire[:16] == bytes(p ^ m for p, m in zip(plain, mask, strict=True))
    assert wire[:16].hex() == "0a96dd695294bc2001a06dd54328e7c5"
    assert wire[16:] == datagram[16:]


def test_a_thousand_initiations_have_no_fixed_size() -> None:
    rng = SeededRandom("inits")
    sizes = [len(SKIN.wrap(handshake(MESSAGE_INITIATION, rng), rng=rng)) for _ in range(1000)]
    assert len(set(sizes)) > 50
    assert INITIATION_SIZE not in sizes
    assert min(sizes) >= INITIATION_SIZE + HANDSHAKE_OVERHEAD


def test_byte_zero_and_the_type_word_are_not_constant() -> None:
    """A DPI rule keys on byte 0 (WireGuard's type) and bytes 1-3 (zero). Datagrams of one
    session (same receiver, counters in a row) still give uniform-looking bytes there."""
    rng = SeededRandom("bytes")
    wires = [SKIN.wrap(transport(96, rng, counter=i), rng=rng) for i in range(1000)]
    wires += [SKIN.wrap(handshake(MESSAGE_INITIATION, rng), rng=rng) for _ in range(200)]
    for offset in range(4):
        counts = Counter(w[offset] for w in wires)
        assert len(counts) > 200, offset  # about 254 of 256 expected for 1200 draws
        assert max(counts.values()) < 20, offset  # about 4.7 expected per value
    # Not the WireGuard framing: no 4,0,0,0 or 1,0,0,0 type words in sight.
    assert sum(w[1:4] == b"\0\0\0" for w in wires) == 0


def test_a_decoy_is_dropped_and_sized_like_the_rest() -> None:
    rng = SeededRandom("decoy")
    decoys = [SKIN.decoy(rng=rng) for _ in range(300)]
    assert all(SKIN.unwrap(d) is None for d in decoys)
    assert len({len(d) for d in decoys}) > 50


def test_wrapping_something_the_link_never_sends_is_our_bug() -> None:
    rng = SeededRandom("bad")
    for bad in (b"", b"\x05\0\0\0" + bytes(60), b"\x04\0\0\0" + bytes(10), bytes(148)):
        with pytest.raises(LocalProtocolError):
            SKIN.wrap(bad, rng=rng)
    with pytest.raises(LocalProtocolError):
        SKIN.wrap(b"\x01\0\0\0" + bytes(100), rng=rng)  # initiation of the wrong size


@pytest.mark.parametrize(
    "ranges", [[], [(10, 100, 1)], [(100, 50, 1)], [(64, 128, 0)], [(64, 70000, 1)]]
)
def test_bad_padding_sizes_are_refused(ranges: list[tuple[int, int, int]]) -> None:
    with pytest.raises(LocalProtocolError, match="padding sizes"):
        PaddingSizes.parse(ranges)


def test_padding_draws_follow_the_weights() -> None:
    sizes = PaddingSizes.parse([(100, 199, 3), (200, 299, 1)])
    rng = SeededRandom("weights")
    draws = [sizes.draw(50, rng) for _ in range(2000)]
    low = sum(d < 200 for d in draws)
    assert 1350 < low < 1650  # 1500 expected
    assert all(100 <= d <= 299 for d in draws)
    assert all(250 <= sizes.draw(250, rng) <= 299 for _ in range(200))  # conditioned on need
    assert sizes.draw(400, rng) == 400


# -- hostile input -------------------------------------------------------------------


def _wires() -> list[bytes]:
    rng = SeededRandom("fuzz")
    out = [SKIN.wrap(handshake(k, rng), rng=rng) for k in SIZES]
    return out + [SKIN.wrap(transport(n, rng), rng=rng) for n in (32, 100, 1200)]


WIRES = _wires()
ORIGINALS = [SKIN.unwrap(w) for w in WIRES]


@settings(max_examples=300)
@given(data=st.binary(max_size=400))
def test_random_bytes_never_raise_and_never_pass_as_a_handshake(data: bytes) -> None:
    out = SKIN.unwrap(data)
    assert out is None or message_type(out) == MESSAGE_TRANSPORT
    assert [SKIN.unwrap(w) for w in WIRES] == ORIGINALS  # no state changed


@given(index=st.integers(0, len(WIRES) - 1), cut=st.integers(0, 2000))
def test_truncations_are_dropped(index: int, cut: int) -> None:
    wire, original = WIRES[index], ORIGINALS[index]
    assert original is not None
    need = len(original) + (0 if original[0] == MESSAGE_TRANSPORT else HANDSHAKE_OVERHEAD)
    cut %= need
    assert SKIN.unwrap(wire[:cut]) is None


@given(index=st.integers(0, len(WIRES) - 1), bit=st.integers(0, 8 * 2000))
def test_a_flipped_bit_never_passes_a_forged_handshake(index: int, bit: int) -> None:
    wire, original = WIRES[index], ORIGINALS[index]
    assert original is not None
    bit %= 8 * len(wire)
    flipped = bytearray(wire)
    flipped[bit // 8] ^= 1 << (bit % 8)
    out = SKIN.unwrap(bytes(flipped))
    need = len(original) + (0 if original[0] == MESSAGE_TRANSPORT else HANDSHAKE_OVERHEAD)
    if bit // 8 >= need:
        assert out == original  # padding carries nothing
    elif original[0] != MESSAGE_TRANSPORT:
        assert out is None  # the wrapper authenticates handshakes
    else:
        assert out != original  # the link's AEAD (or a None here) rejects the change


def test_the_wrong_responder_key_opens_nothing() -> None:
    rng = SeededRandom("wrong")
    other = MaskedSkin(OTHER)
    for kind in SIZES:
        for _ in range(100):
            assert other.unwrap(SKIN.wrap(handshake(kind, rng), rng=rng)) is None
    results = [other.unwrap(SKIN.wrap(transport(200, rng), rng=rng)) for _ in range(300)]
    assert all(r is None for r in results)  # a pass would need type 4 and a fitting length
