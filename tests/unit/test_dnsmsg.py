"""DNS messages for the provider's resolver (RFC 1035 section 4): queries are read with
strict bounds, answers are matched to their question, TTLs are found and counted down;
random and mutated bytes never raise. The cache and per-client limit run on literal times."""

import struct

from hypothesis import given
from hypothesis import strategies as st

from tidewire.node.core import dnsmsg
from tidewire.node.core.dnscache import MAX_TTL, AnswerCache, ClientLimiter

A, SOA, OPT = 1, 6, 41


def answer(
    query: bytes,
    *records: tuple[int, int, bytes],
    rcode: int = 0,
    tc: bool = False,
    section: str = "an",
) -> bytes:
    """A response to `query` with records (type, ttl, rdata) named by a pointer to the
    question (0xc00c), in the answer or authority section, plus an OPT record."""
    qid = struct.unpack_from("!H", query)[0]
    flags = dnsmsg.QR | dnsmsg.RD | dnsmsg.RA | rcode | (dnsmsg.TC if tc else 0)
    an, ns = (len(records), 0) if section == "an" else (0, len(records))
    body = query[12:]
    for rtype, ttl, rdata in records:
        body += b"\xc0\x0c" + struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata
    body += b"\x00" + struct.pack("!HHIH", OPT, 1232, 0x8000, 0)  # EDNS with DO
    return struct.pack("!HHHHHH", qid, flags, 1, an, ns, 1) + body


def test_query_question_is_read_and_lower_cased() -> None:
    q = dnsmsg.parse_query(dnsmsg.build_query(0x1234, "WWW.Example.ORG", A))
    name = b"\x03www\x07example\x03org\x00"
    assert q is not None and q.id == 0x1234 and q.key == (name, 1, 1, False, False)


def test_the_key_carries_the_do_and_cd_bits() -> None:
    """CD is a header bit (RFC 4035 section 3.2.2), DO the top bit of the OPT record's
    extended flags (RFC 6891 section 6.1.4, RFC 3225): an answer to one must not be
    served to the other, as Unbound and dnsmasq key their caches."""
    keys = set()
    for do in (False, True):
        for cd in (False, True):
            q = dnsmsg.parse_query(dnsmsg.build_query(1, "example.org", A, do=do, cd=cd))
            assert q is not None and (q.do, q.cd) == (do, cd)
            keys.add(q.key)
    assert len(keys) == 4
    plain = dnsmsg.parse_query(dnsmsg.build_query(1, "example.org", A, edns=True))
    assert plain is not None and not plain.do  # EDNS without DO is the same as none
    assert plain.key == dnsmsg.parse_query(dnsmsg.build_query(1, "example.org", A)).key  # type: ignore[union-attr]


def test_a_query_whose_additional_section_does_not_parse_is_refused() -> None:
    good = dnsmsg.build_query(7, "example.org", A, do=True)
    assert dnsmsg.parse_query(good) is not None
    assert dnsmsg.parse_query(good[:-1]) is None  # cut inside the OPT record
    assert dnsmsg.parse_query(good + b"\x00") is None  # trailing garbage
    claims_two = good[:10] + b"\x00\x02" + good[12:]
    assert dnsmsg.parse_query(claims_two) is None  # the second record is missing


def test_what_a_forwarder_must_not_relay_is_refused() -> None:
    good = dnsmsg.build_query(7, "example.org", A)
    assert dnsmsg.parse_query(good) is not None
    assert dnsmsg.parse_query(answer(good, (A, 60, b"\x01\x02\x03\x04"))) is None  # a response
    assert dnsmsg.parse_query(good[:2] + b"\x28\x00" + good[4:]) is None  # opcode UPDATE
    assert dnsmsg.parse_query(good[:4] + b"\x00\x02" + good[6:]) is None  # two questions
    assert dnsmsg.parse_query(good[:-1]) is None  # cut in the question
    pointer = good[:12] + b"\xc0\x0c" + good[-4:]
    assert dnsmsg.parse_query(pointer) is None  # a pointer (to itself) in the question
    long_label = good[:12] + b"\x40" + b"a" * 64 + b"\x00" + good[-4:]
    assert dnsmsg.parse_query(long_label) is None
    long_name = good[:12] + (b"\x3f" + b"a" * 63) * 4 + b"\x00" + good[-4:]  # 257 bytes
    assert dnsmsg.parse_query(long_name) is None
    assert dnsmsg.parse_query(b"\x00" * 12) is None  # no question at all


def test_response_is_matched_to_the_question_and_its_ttls_found() -> None:
    query = dnsmsg.build_query(1, "example.org", A)
    q = dnsmsg.parse_query(query)
    assert q is not None
    msg = answer(query, (A, 300, b"\x01\x02\x03\x04"), (A, 60, b"\x05\x06\x07\x08"))
    r = dnsmsg.parse_response(msg, q)
    assert r is not None and r.rcode == 0 and r.min_ttl == 60 and len(r.ttl_offsets) == 2
    other = dnsmsg.parse_query(dnsmsg.build_query(1, "example.net", A))
    assert other is not None and dnsmsg.parse_response(msg, other) is None  # another name
    assert dnsmsg.parse_response(msg[:-5], q) is None  # cut inside a record
    aged = dnsmsg.age(msg, r.ttl_offsets, 100)
    assert [struct.unpack_from("!I", aged, at)[0] for at in r.ttl_offsets] == [200, 0]


def test_negative_answer_ttl_is_the_soa_minimum() -> None:
    query = dnsmsg.build_query(1, "nope.example.org", A)
    q = dnsmsg.parse_query(query)
    assert q is not None
    soa = b"\x00\x00" + struct.pack("!IIIII", 1, 7200, 900, 1209600, 30)
    r = dnsmsg.parse_response(answer(query, (SOA, 3600, soa), rcode=3, section="ns"), q)
    assert r is not None and r.rcode == dnsmsg.NXDOMAIN and r.min_ttl == 30


def test_error_response_keeps_id_and_question() -> None:
    query = dnsmsg.build_query(0xBEEF, "example.org", A)
    q = dnsmsg.parse_query(query)
    assert q is not None
    reply = dnsmsg.error_response(query, q, dnsmsg.SERVFAIL)
    qid, flags, qd, an, ns, ar = struct.unpack_from("!HHHHHH", reply)
    assert (qid, flags & 0x800F, qd, an, ns, ar) == (0xBEEF, 0x8002, 1, 0, 0, 0)
    assert reply[12:] == query[12:]


def test_cache_counts_ttls_down_and_expires() -> None:
    query = dnsmsg.build_query(1, "example.org", A)
    q = dnsmsg.parse_query(query)
    assert q is not None
    msg = answer(query, (A, 60, b"\x01\x02\x03\x04"))
    r = dnsmsg.parse_response(msg, q)
    assert r is not None
    cache = AnswerCache(max_entries=2)
    assert cache.put(q.key, msg, r, now=1000.0)
    got = cache.get(q.key, now=1025.5)
    assert got is not None and struct.unpack_from("!I", got, r.ttl_offsets[0])[0] == 35
    assert cache.get(q.key, now=1060.0) is None and len(cache) == 0
    # not kept: truncated, SERVFAIL, TTL 0; bounded by max_entries, oldest out first
    assert not cache.put(q.key, msg, r._replace(truncated=True), now=0)
    assert not cache.put(q.key, msg, r._replace(rcode=dnsmsg.SERVFAIL), now=0)
    assert not cache.put(q.key, msg, r._replace(min_ttl=0), now=0)
    for i in range(3):
        cache.put((b"%d" % i, 1, 1, False, False), msg, r._replace(min_ttl=10**9), now=0)
    assert len(cache) == 2 and cache.get((b"0", 1, 1, False, False), now=0) is None
    assert cache.get((b"2", 1, 1, False, False), now=MAX_TTL - 1) is not None
    assert cache.get((b"2", 1, 1, False, False), now=MAX_TTL) is None  # a huge TTL is capped


def test_an_answer_cached_without_do_or_cd_is_not_served_with_them() -> None:
    asked = {}
    for do, cd in ((False, False), (True, False), (False, True), (True, True)):
        query = dnsmsg.build_query(1, "example.org", A, do=do, cd=cd)
        q = dnsmsg.parse_query(query)
        assert q is not None
        asked[do, cd] = q, query
    cache = AnswerCache()
    q, query = asked[False, False]
    msg = answer(query, (A, 60, b"\x01\x02\x03\x04"))
    r = dnsmsg.parse_response(msg, q)
    assert r is not None and cache.put(q.key, msg, r, now=0.0)
    assert cache.get(q.key, now=1.0) is not None
    for flags in ((True, False), (False, True), (True, True)):
        assert cache.get(asked[flags][0].key, now=1.0) is None, flags
    signed, query = asked[True, False]  # and the other way round: DO's answer stays with DO
    msg = answer(query, (A, 60, b"\x01\x02\x03\x04"))
    r = dnsmsg.parse_response(msg, signed)
    cache = AnswerCache()
    assert r is not None and cache.put(signed.key, msg, r, now=0.0)
    assert cache.get(asked[False, False][0].key, now=1.0) is None
    assert cache.get(signed.key, now=1.0) is not None


def test_limiter_is_a_token_bucket_per_client() -> None:
    limiter = ClientLimiter(rate=10, burst=5, max_clients=2)
    assert all(limiter.allow("10.99.0.2", now=0.0) for _ in range(5))
    assert not limiter.allow("10.99.0.2", now=0.0)
    assert limiter.allow("10.99.0.3", now=0.0)  # another client has its own bucket
    assert limiter.allow("10.99.0.2", now=0.1) and not limiter.allow("10.99.0.2", now=0.1)
    for i in range(10):  # a spoofing flood: memory stays bounded
        limiter.allow(f"10.0.0.{i}", now=1.0)
    assert len(limiter._buckets) == 2


queries = st.builds(
    dnsmsg.build_query,
    st.integers(0, 0xFFFF),
    st.from_regex(r"[a-z0-9]{1,20}(\.[a-z0-9]{1,20}){0,4}", fullmatch=True),
    st.integers(0, 0xFFFF),
)


@given(
    st.from_regex(r"[a-zA-Z0-9]{1,20}(\.[a-zA-Z0-9]{1,20}){0,4}", fullmatch=True),
    st.integers(0, 0xFFFF),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.integers(0, 0x7FFF),
)
def test_the_key_is_the_question_and_the_two_bits_of_the_bytes(
    name: str, qtype: int, do: bool, cd: bool, edns: bool, z: int
) -> None:
    """Whatever else the OPT record's flags and the header carry, the key is the
    lower-cased question and exactly the DO and CD bits."""
    query = bytearray(dnsmsg.build_query(1, name, qtype, do=do, cd=cd, edns=edns))
    if do or edns:  # the other extended flags (Z) and the rest of the header do not count
        struct.pack_into("!H", query, len(query) - 4, (0x8000 if do else 0) | z)
    q = dnsmsg.parse_query(bytes(query))
    assert q is not None
    assert q.key == (dnsmsg.encode_name(name.lower()), qtype, 1, cd, do)


@given(st.binary(max_size=600))
def test_random_bytes_never_raise(data: bytes) -> None:
    q = dnsmsg.parse_query(data)
    some = dnsmsg.parse_query(dnsmsg.build_query(1, "example.org", A))
    assert some is not None
    dnsmsg.parse_response(data, q or some)


@given(queries, st.data())
def test_mutated_answers_never_raise_and_offsets_stay_inside(
    query: bytes, data: st.DataObject
) -> None:
    q = dnsmsg.parse_query(query)
    assert q is not None
    msg = bytearray(answer(query, (A, 60, b"\x01\x02\x03\x04"), (SOA, 5, b"\x00" * 22)))
    for _ in range(data.draw(st.integers(0, 4))):
        at = data.draw(st.integers(0, len(msg) - 1))
        msg[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(msg)))
    r = dnsmsg.parse_response(bytes(msg[:cut]), q)
    if r is not None:
        assert all(0 <= at <= cut - 4 for at in r.ttl_offsets)
        dnsmsg.age(bytes(msg[:cut]), r.ttl_offsets, 3)
