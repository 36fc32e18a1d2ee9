"""Known answers for each crypto step of WireGuard.

Sources:
- KDF1/KDF2/KDF3: wireguard-go, device/kdf_test.go (TestKDF), the three vectors verbatim.
- Initial chaining key and hash: HASH(CONSTRUCTION) and HASH(ck || IDENTIFIER) as
  precomputed in cloudflare/boringtun, src/noise/handshake.rs (INITIAL_CHAIN_KEY,
  INITIAL_CHAIN_HASH).
- TAI64N: D. J. Bernstein, https://cr.yp.to/libtai/tai64.html ("the TAI64 label for
  1992-06-02 08:07:09 TAI is hexadecimal 400000002a2b2c2d") together with libtai's
  tai_unix(), which maps Unix time u to 2^62 + 10 + u, the same mapping wireguard-go's
  tai64n package uses; 1970-01-01 is therefore 400000000000000a.
- X25519: RFC 7748 section 6.1 (Alice and Bob).
"""

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidewire.protocol.link import crypto, tai64n
from tidewire.protocol.link.profile import NATIVE, WIREGUARD

KDF_VECTORS = [
    (
        "746573742d6b6579",
        "746573742d696e707574",
        "6f0e5ad38daba1bea8a0d213688736f19763239305e0f58aba697f9ffc41c633",
        "df1194df20802a4fe594cde27e92991c8cae66c366e8106aaa937a55fa371e8a",
        "fac6e2745a325f5dc5d11a5b165aad08b0ada28e7b4e666b7c077934a4d76c24",
    ),
    (
        "776972656775617264",
        "776972656775617264",
        "491d43bbfdaa8750aaf535e334ecbfe5129967cd64635101c566d4caefda96e8",
        "1e71a379baefd8a79aa4662212fcafe19a23e2b609a3db7d6bcba8f560e3d25f",
        "31e1ae48bddfbe5de38f295e5452b1909a1b4e38e183926af3780b0c1e1f0160",
    ),
    (
        "",
        "",
        "8387b46bf43eccfcf349552a095d8315c4055beb90208fb1be23b894bc2ed5d0",
        "58a0e5f6faefccf4807bff1f05fa8a9217945762040bcec2f4b4a62bdfe0e86e",
        "0ce6ea98ec548f8e281e93e32db65621c45eb18dc6f0a7ad94178610a2f7338e",
    ),
]


@given(key=st.binary(max_size=200), data=st.binary(max_size=300))
def test_hmac_blake2s_agrees_with_the_standard_library(key: bytes, data: bytes) -> None:
    # crypto.hmac is RFC 2104 over BLAKE2s written out (so the node need not import
    # hmac, which maps libcrypto); keys longer than the 64-byte block are hashed first
    assert crypto.hmac(key, data) == hmac.digest(key, data, "blake2s")


def test_mac_is_keyed_blake2s_128() -> None:
    key, data = bytes(range(32)), b"message"
    want = hashlib.blake2s(data, key=key, digest_size=16).digest()
    assert crypto.mac(key, data) == want
    assert crypto.equal(crypto.mac(key, data), want)
    assert not crypto.equal(crypto.mac(key, data), bytes(16))


@pytest.mark.parametrize(("key", "data", "t0", "t1", "t2"), KDF_VECTORS)
def test_kdf_vectors_from_wireguard_go(key: str, data: str, t0: str, t1: str, t2: str) -> None:
    k, d = bytes.fromhex(key), bytes.fromhex(data)
    assert crypto.kdf1(k, d).hex() == t0
    assert [x.hex() for x in crypto.kdf2(k, d)] == [t0, t1]
    assert [x.hex() for x in crypto.kdf3(k, d)] == [t0, t1, t2]


def test_initial_chaining_key_and_hash_match_boringtun() -> None:
    ck = bytes(
        [
            96,
            226,
            109,
            174,
            243,
            39,
            239,
            192,
            46,
            195,
            53,
            226,
            160,
            37,
            210,
            208,
            22,
            235,
            66,
            6,
            248,
            114,
            119,
            245,
            45,
            56,
            209,
            152,
            139,
            120,
            205,
            54,
        ]
    )
    h = bytes(
        [
            34,
            17,
            179,
            97,
            8,
            26,
            197,
            102,
            105,
            18,
            67,
            219,
            69,
            138,
            213,
            50,
            45,
            156,
            108,
            102,
            34,
            147,
            232,
            183,
            14,
            225,
            156,
            101,
            186,
            7,
            158,
            243,
        ]
    )
    assert WIREGUARD.initial_chain_key == ck
    assert WIREGUARD.initial_hash == h


def test_native_profile_is_domain_separated() -> None:
    assert NATIVE.initial_chain_key == WIREGUARD.initial_chain_key  # same Noise pattern
    assert NATIVE.initial_hash != WIREGUARD.initial_hash
    key = bytes(range(32))
    assert NATIVE.mac1_key(key) != WIREGUARD.mac1_key(key)
    assert NATIVE.cookie_key(key) != WIREGUARD.cookie_key(key)


def test_tai64_label_from_djb() -> None:
    # 1992-06-02 08:06:59 UTC is Unix 707472419; libtai labels it 400000002a2b2c2d.
    assert tai64n.stamp(707472419.0) == bytes.fromhex("400000002a2b2c2d00000000")
    assert tai64n.stamp(0.0) == bytes.fromhex("400000000000000a00000000")


def test_tai64n_nanoseconds_are_whitened_like_wireguard_go() -> None:
    ts = tai64n.stamp(1.5)
    nanos = int.from_bytes(ts[8:], "big")
    assert nanos == 500_000_000 & ~((1 << 24) - 1)
    assert tai64n.stamp_ns(1_500_000_000) == ts


def test_x25519_rfc7748() -> None:
    alice = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    bob_pub = bytes.fromhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
    assert crypto.public_key(alice).hex() == (
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    )
    assert crypto.dh(alice, bob_pub).hex() == (
        "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
    )


def test_dh_with_a_low_order_point_is_a_remote_error() -> None:
    from tidewire.protocol.errors import RemoteProtocolError

    with pytest.raises(RemoteProtocolError):
        crypto.dh(bytes(range(32)), bytes(32))
