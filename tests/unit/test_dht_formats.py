"""The DHT's formats: bencoding, KRPC, BEP 42 ids and BEP 44 items, with the known
answers of the specifications."""

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.signing import SigningKey

from tidewire.protocol.dht import bencode, items, krpc
from tidewire.protocol.dht.ids import crc32c, exempt, id_matches, secure_id
from tidewire.protocol.errors import RemoteProtocolError

# -- bencode -----------------------------------------------------------------------

values = st.recursive(
    st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1) | st.binary(max_size=40),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.binary(max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)


@given(values)
def test_bencode_round_trips(value: object) -> None:
    assert bencode.decode(bencode.encode(value)) == value


def test_bencode_known_answers() -> None:
    # BEP 3's examples
    assert bencode.encode(b"spam") == b"4:spam"
    assert bencode.encode(3) == b"i3e" and bencode.encode(-3) == b"i-3e"
    assert bencode.encode([b"spam", b"eggs"]) == b"l4:spam4:eggse"
    assert bencode.encode({"cow": "moo", "spam": "eggs"}) == b"d3:cow3:moo4:spam4:eggse"
    assert bencode.encode({"spam": [b"a", b"b"]}) == b"d4:spaml1:a1:bee"
    assert bencode.encode(bencode.Raw(b"i5e")) == b"i5e"


@pytest.mark.parametrize(
    "data",
    [
        b"i03e",
        b"i-0e",
        b"i-e",
        b"ie",
        b"03:abc",
        b"5:abc",
        b"l",
        b"d1:a",
        b"i1ei2e",
        b"x",
        b"d1:ai1e1:ai2ee",
        b"di1ei2ee",
        b"",
        b"i" + b"9" * 30 + b"e",
        b"l" * 40 + b"e" * 40,
    ],
)
def test_bencode_refuses_what_is_not_canonical_or_complete(data: bytes) -> None:
    with pytest.raises(bencode.BencodeError):
        bencode.decode(data)


@given(st.binary(max_size=200))
def test_bencode_of_random_bytes_is_a_value_or_a_bencode_error(data: bytes) -> None:
    with contextlib.suppress(bencode.BencodeError):
        bencode.decode(data)


def test_spans_give_the_verbatim_bytes_of_each_value() -> None:
    data = b"d1:ad2:idi1e1:vl1:xee1:t2:aae"
    outer = bencode.spans(data, 0)
    start, _ = outer[b"a"]
    v0, v1 = bencode.spans(data, start)[b"v"]
    assert data[v0:v1] == b"l1:xe"


# -- BEP 42 ------------------------------------------------------------------------


def test_crc32c_check_value() -> None:
    # the catalogue check value of CRC-32/ISCSI (CRC-32C), as RFC 3720 defines it
    assert crc32c(b"123456789") == 0xE3069283


# BEP 42's table of test vectors: IP, rand, example node id (bold prefix, last byte)
BEP42 = [
    ("124.31.75.21", 1, "5fbfbff10c5d6a4ec8a88e4c6ab4c28b95eee401"),
    ("21.75.31.124", 86, "5a3ce9c14e7a08645677bbd1cfe7d8f956d53256"),
    ("65.23.51.170", 22, "a5d43220bc8f112a3d426c84764f8c2a1150e616"),
    ("84.124.73.14", 65, "1b0321dd1bb1fe518101ceef99462b947a01ff41"),
    ("43.213.53.83", 90, "e56f6cbf5b7c4be0237986d5243b87aa6d51305a"),
]


@pytest.mark.parametrize(("ip", "rand", "example"), BEP42)
def test_bep42_vectors(ip: str, rand: int, example: str) -> None:
    node_id = bytes.fromhex(example)
    assert id_matches(node_id, ip)
    made = secure_id(ip, bytes(19) + bytes([rand]))
    assert made[:2] == node_id[:2] and made[2] & 0xF8 == node_id[2] & 0xF8
    assert made[19] == rand
    other = bytes([node_id[0] ^ 0x80]) + node_id[1:]
    assert not id_matches(other, ip)


def test_local_addresses_are_exempt() -> None:
    assert exempt("10.1.2.3") and exempt("127.0.0.1") and not exempt("8.8.8.8")
    assert id_matches(bytes(20), "192.168.1.1")


# -- BEP 44 ------------------------------------------------------------------------

# BEP 44's "Test vectors" section: the public key, the signature and target ids
PUBLIC = bytes.fromhex("77ff84905a91936367c01360803104f92432fcd904a43511876df5cdf3e7e548")
SIG1 = bytes.fromhex(
    "305ac8aeb6c9c151fa120f120ea2cfb923564e11552d06a5d856091e5e853cff"
    "1260d3f39e4999684aa92eb73ffd136e6f4f3ecbfda0ce53a1608ecd7ae21f01"
)
SIG2 = bytes.fromhex(
    "6834284b6b24c3204eb2fea824d82f88883a3d95e8b4a21b8c0ded553d17d17d"
    "df9a8a7104b1258f30bed3787e6cb896fca78c58f8e03b5f18f14951a87d9a08"
)
VALUE = b"12:Hello World!"


def test_bep44_test_1_mutable() -> None:
    assert items.signed_buffer(1, VALUE) == b"3:seqi1e1:v12:Hello World!"
    item = items.MutableItem(PUBLIC, 1, VALUE, SIG1)
    item.check()
    assert item.target.hex() == "4a533d47ec9c7d95b1ad75f576cffc641853b750"


def test_bep44_test_2_mutable_with_salt() -> None:
    assert items.signed_buffer(1, VALUE, b"foobar") == b"4:salt6:foobar3:seqi1e1:v12:Hello World!"
    item = items.MutableItem(PUBLIC, 1, VALUE, SIG2, b"foobar")
    item.check()
    assert item.target.hex() == "411eba73b6f087ca51a3795d9c8c938d365e32c1"


def test_bep44_test_3_immutable() -> None:
    assert items.immutable_target(VALUE).hex() == "e5f96f6f38320f0f33959cb4d3d656452117aadb"


def test_a_touched_item_fails_with_the_beps_codes() -> None:
    with pytest.raises(items.ItemError) as e:
        items.MutableItem(PUBLIC, 2, VALUE, SIG1).check()  # another seq
    assert e.value.code == items.INVALID_SIGNATURE
    with pytest.raises(items.ItemError) as e:
        items.MutableItem(PUBLIC, 1, VALUE, SIG1, b"salt").check()  # salt not signed
    assert e.value.code == items.INVALID_SIGNATURE
    with pytest.raises(items.ItemError) as e:
        items.MutableItem(PUBLIC, 1, b"1001:" + bytes(1001), SIG1).check()
    assert e.value.code == items.VALUE_TOO_BIG
    with pytest.raises(items.ItemError) as e:
        items.MutableItem(PUBLIC, 1, VALUE, SIG1, bytes(65)).check()
    assert e.value.code == items.SALT_TOO_BIG


def test_signing_makes_items_that_verify() -> None:
    key = SigningKey(bytes(range(32)))
    item = items.sign(key, bencode.encode(b"record"), 7, b"tidewire")
    item.check()
    assert item.key == bytes(key.verify_key)
    with pytest.raises(ValueError, match="BEP 44 allows 1000"):
        items.sign(key, bytes(1001), 1)


# -- KRPC --------------------------------------------------------------------------


def test_krpc_parses_bep5_examples() -> None:
    # BEP 5's ping query and answer
    q = krpc.parse(b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe")
    assert isinstance(q, krpc.Query) and q.q == b"ping" and q.sender == b"abcdefghij0123456789"
    r = krpc.parse(b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re")
    assert isinstance(r, krpc.Response) and r.t == b"aa"
    e = krpc.parse(b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee")
    assert isinstance(e, krpc.Error) and e.code == 201


def test_krpc_keeps_the_verbatim_value_of_a_put() -> None:
    data = krpc.query(b"t1", "put", bytes(20), token=b"x", v=bencode.Raw(b"d1:bi1e1:ai2ee"))
    q = krpc.parse(data)
    assert isinstance(q, krpc.Query) and q.raw_value == b"d1:bi1e1:ai2ee"


def test_compact_nodes_and_peers() -> None:
    nodes = [(bytes([i]) * 20, (f"10.0.0.{i}", 6881 + i)) for i in range(1, 4)]
    assert krpc.decode_nodes(krpc.encode_nodes(nodes)) == nodes
    with pytest.raises(RemoteProtocolError):
        krpc.decode_nodes(bytes(27))
    peers: list[bencode.Value] = [
        krpc.encode_address(("1.2.3.4", 80)),
        b"short",
        krpc.encode_address(("::1", 9)),
    ]
    assert krpc.decode_peers(peers) == [("1.2.3.4", 80), ("::1", 9)]


@given(st.binary(max_size=300))
def test_krpc_of_random_bytes_is_a_message_or_a_counted_refusal(data: bytes) -> None:
    try:
        krpc.parse(data)
    except RemoteProtocolError as exc:
        assert exc.reason.startswith(("krpc_", "bencode"))
