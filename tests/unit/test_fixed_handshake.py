"""A WireGuard handshake with fixed keys and fixed randomness produces fixed bytes.

How the bytes below were made: this very scenario was run once with the code of
the first commit of protocol/ (Alice's and Bob's static keys are RFC 7748 section
6.1's; ephemeral keys, indices and the cookie-free macs come from the seeded
SeededRandom("fixed-alice"/"fixed-bob"); wall clock 1,700,000,000 s; preshared key
00..1f; one 64-byte inner packet 00..3f) and its output pasted here. The Noise part
of the construction is independently checked by test_noise_vectors.py, and the
bytes on the wire by the wireguard-go lab tests; this test pins the whole message
layout so any change to it is seen.
"""

from tidewire.protocol.link.crypto import public_key
from tidewire.protocol.link.device import Device
from tidewire.protocol.link.peer import PeerConfig
from tidewire.protocol.types import UDP, Path

from .helpers import SeededRandom

H = bytes.fromhex
ALICE = H("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
BOB = H("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")

INITIATION = (
    "01000000b8b9e13937f2f66f520a185e877f6ebea76ed4ef924c649787e6b30173130331d0ab65571e0a01ec"
    "d7ac4bd2cf8fe3b739f01b544644d864f31928ef34c95fbff41c9ab220f93b59df06ec469fb94032f35e4369"
    "58f5e83fe75d0723f638fb8a3948a7b2cded68725917b1fbb337a8f10d5308f96f9f39c26177ee8b955060a8"
    "00000000000000000000000000000000"
)
RESPONSE = (
    "020000002d01bb4eb8b9e139d0f310baaaa1f2df8fbe843860414fca61659568e13782ad5e930c868a0eda02"
    "870bad7d8ac8a8acb6eea311871de6a0a72c70893cacb41c391287a994f0df4600000000000000000000000000"
    "000000"
)
TRANSPORT = (
    "040000002d01bb4e00000000000000002b86e85acc24ce25fb7102afd42525b6fbb221555a2de9f5fcb0173f"
    "941a64ed476c582dadf8b668877e065549340c987185bde187262a03e5946d432243aef98dad42db95cb9d81"
    "436e3e989bb2ce86"
)


def test_fixed_keys_and_randomness_give_fixed_bytes() -> None:
    a = Device(private_key=ALICE, rng=SeededRandom("fixed-alice"), wall_offset=1_700_000_000.0)
    b = Device(private_key=BOB, rng=SeededRandom("fixed-bob"), wall_offset=1_700_000_000.0)
    psk = bytes(range(32))
    pa = a.add_peer(
        PeerConfig(public_key=public_key(BOB), endpoint=("192.0.2.2", 51820), preshared_key=psk)
    )
    pb = b.add_peer(PeerConfig(public_key=public_key(ALICE), preshared_key=psk))
    assert a.encrypt(pa, bytes(range(64)), now=0.0) is None  # staged until the handshake
    [(init, to)] = a.datagrams_to_send()
    assert to == Path(UDP, ("192.0.2.2", 51820))
    assert init.hex() == INITIATION
    assert b.receive_datagram(init, Path(UDP, ("192.0.2.1", 51820)), now=0.01) is None
    [(resp, _)] = b.datagrams_to_send()
    assert resp.hex() == RESPONSE
    assert a.receive_datagram(resp, Path(UDP, ("192.0.2.2", 51820)), now=0.02) is None
    [(data, _)] = a.datagrams_to_send()
    assert data.hex() == TRANSPORT
    got = b.receive_datagram(data, Path(UDP, ("192.0.2.1", 51820)), now=0.03)
    assert got is not None and got[0] is pb and got[1] == bytes(range(64))
