"""Just enough of DNS messages (RFC 1035 section 4) for a caching forwarder.

`parse_query` reads the header and the one question of a client's query; anything
else a forwarder must not relay is refused (None): a response, an opcode other
than QUERY, a question count other than one, answers or authority records in a
query, a name with a compression pointer or a label over 63 bytes, a name over 255
bytes, an additional record cut short, trailing garbage after the additional
section. The query's CD bit (RFC 4035 section 3.2.2) and the DO bit of its OPT
record (RFC 3225; RFC 6891 section 6.1.4) are part of its cache key: an answer
asked for without DNSSEC records, or validated, must not be served to a query that
asked for them, or asked not to validate (as Unbound and dnsmasq key theirs). `parse_response`
checks that an upstream's answer is for that question (ID, name, type, class),
and walks every resource record with the same bounds, to find where the TTLs are
(the cache counts them down in place) and their minimum (how long the answer may
be cached; RFC 2308 section 5 for negative answers: the SOA in the authority
section carries it). The OPT pseudo-record of EDNS (RFC 6891 section 6.1.3)
carries flags where a TTL would be and is skipped. Compression pointers in
records are followed only as far as needed to skip a name: a record's name ends
at its first pointer, so no loop can form. Nothing here raises on hostile bytes.
"""

import struct
from typing import NamedTuple

HEADER = struct.Struct("!HHHHHH")  # id, flags, qdcount, ancount, nscount, arcount
QR = 0x8000
OPCODE_MASK = 0x7800
TC = 0x0200
RD = 0x0100
RA = 0x0080
CD = 0x0010  # checking disabled (RFC 4035 section 3.2.2)
DO = 0x8000  # DNSSEC OK: the top bit of the OPT record's extended flags (RFC 3225)
RCODE_MASK = 0x000F
NOERROR, SERVFAIL, NXDOMAIN, REFUSED = 0, 2, 3, 5
OPT = 41  # EDNS pseudo-record type
MAX_NAME = 255  # bytes on the wire, RFC 1035 section 2.3.4
MAX_LABEL = 63
MAX_MESSAGE = 65535  # a TCP frame's length field bounds every message
MAX_RECORDS = 512  # more records than any real answer carries; bounds the walk
MAX_ADDITIONAL_IN_QUERY = 2  # an OPT record, perhaps a TSIG or cookie: nothing more


class Query(NamedTuple):
    id: int
    flags: int
    qname: bytes  # wire form, lower-cased: the cache key's name
    qtype: int
    qclass: int
    end: int  # offset just past the question
    do: bool = False  # the OPT record's DO bit

    @property
    def cd(self) -> bool:
        return bool(self.flags & CD)

    @property
    def key(self) -> tuple[bytes, int, int, bool, bool]:
        """What the cache keys an answer on: the question, CD and DO."""
        return (self.qname, self.qtype, self.qclass, self.cd, self.do)


class Response(NamedTuple):
    id: int
    rcode: int
    truncated: bool
    min_ttl: int | None  # None: nothing to cache it by (no records)
    ttl_offsets: tuple[int, ...]  # where each record's 32-bit TTL lies


def _question_name(data: bytes, at: int) -> tuple[bytes, int] | None:
    """The lower-cased wire name at `at` (no pointers allowed) and the offset after it."""
    start, n = at, len(data)
    while True:
        if at >= n:
            return None
        length = data[at]
        if length == 0:
            at += 1
            break
        if length > MAX_LABEL:  # a pointer (0xC0) or a reserved label type
            return None
        at += 1 + length
        if at - start > MAX_NAME - 1:
            return None
    if at > n:
        return None
    return data[start:at].lower(), at


def _skip_name(data: bytes, at: int) -> int | None:
    """The offset after a record's name, which may end in a compression pointer."""
    start, n = at, len(data)
    while at < n:
        length = data[at]
        if length == 0:
            return at + 1
        if length & 0xC0 == 0xC0:
            return at + 2 if at + 2 <= n else None
        if length > MAX_LABEL:
            return None
        at += 1 + length
        if at - start > MAX_NAME:
            return None
    return None


def parse_query(data: bytes) -> Query | None:
    """The question of a client's query, or None if it is not one a forwarder relays."""
    if not HEADER.size < len(data) <= MAX_MESSAGE:
        return None
    qid, flags, qd, an, ns, ar = HEADER.unpack_from(data)
    if flags & QR or flags & OPCODE_MASK or qd != 1 or an or ns or ar > MAX_ADDITIONAL_IN_QUERY:
        return None
    name = _question_name(data, HEADER.size)
    if name is None:
        return None
    qname, at = name
    if at + 4 > len(data):
        return None
    qtype, qclass = struct.unpack_from("!HH", data, at)
    do = _additional_do(data, at + 4, ar)
    if do is None:
        return None
    return Query(qid, flags, qname, qtype, qclass, at + 4, do)


def _additional_do(data: bytes, at: int, count: int) -> bool | None:
    """Whether an OPT record among the `count` additional records at `at` sets DO, or
    None if they do not end exactly where the message does."""
    do = False
    for _ in range(count):
        after = _skip_name(data, at)
        if after is None or after + 10 > len(data):
            return None
        rtype, _rclass, flags, rdlength = struct.unpack_from("!HHIH", data, after)
        at = after + 10 + rdlength
        if at > len(data):
            return None
        if rtype == OPT:
            do = do or bool(flags & DO)
    return do if at == len(data) else None


def parse_response(data: bytes, query: Query) -> Response | None:
    """An upstream's answer to `query` (its ID may differ: the caller sets its own), or
    None if it is not an answer to that question or is malformed."""
    if not HEADER.size < len(data) <= MAX_MESSAGE:
        return None
    qid, flags, qd, an, ns, ar = HEADER.unpack_from(data)
    if not flags & QR or flags & OPCODE_MASK or qd != 1 or an + ns + ar > MAX_RECORDS:
        return None
    name = _question_name(data, HEADER.size)
    if name is None or name[0] != query.qname:
        return None
    at = name[1]
    if at + 4 > len(data) or struct.unpack_from("!HH", data, at) != (query.qtype, query.qclass):
        return None
    at += 4
    truncated = bool(flags & TC)
    offsets: list[int] = []
    ttls: list[int] = []
    soa_minimum: int | None = None
    for index in range(an + ns + ar):
        after = _skip_name(data, at)
        if after is None or after + 10 > len(data):
            if truncated:  # a truncated answer may end mid-record; it is never cached
                break
            return None
        rtype, _rclass, ttl, rdlength = struct.unpack_from("!HHIH", data, after)
        end = after + 10 + rdlength
        if end > len(data):
            if truncated:
                break
            return None
        if rtype != OPT:
            offsets.append(after + 4)
            ttls.append(ttl & 0x7FFFFFFF)  # RFC 2181 section 8: the top bit means zero
            if rtype == 6 and an <= index < an + ns and rdlength >= 20:  # SOA in authority
                soa_minimum = struct.unpack_from("!I", data, end - 4)[0] & 0x7FFFFFFF
        at = end
    min_ttl = min(ttls) if ttls else None
    if soa_minimum is not None and min_ttl is not None:
        min_ttl = min(min_ttl, soa_minimum)
    return Response(qid, flags & RCODE_MASK, truncated, min_ttl, tuple(offsets))


def with_id(message: bytes, qid: int) -> bytes:
    return struct.pack("!H", qid) + message[2:]


def age(message: bytes, offsets: tuple[int, ...], elapsed: int) -> bytes:
    """`message` with every TTL at `offsets` lowered by `elapsed` seconds (not below 0)."""
    out = bytearray(message)
    for at in offsets:
        (ttl,) = struct.unpack_from("!I", out, at)
        struct.pack_into("!I", out, at, max(0, (ttl & 0x7FFFFFFF) - elapsed))
    return bytes(out)


def error_response(data: bytes, query: Query, rcode: int) -> bytes:
    """A reply to `query` carrying only its question and `rcode` (SERVFAIL, REFUSED)."""
    flags = QR | (query.flags & RD) | RA | rcode
    return HEADER.pack(query.id, flags, 1, 0, 0, 0) + data[HEADER.size : query.end]


def build_query(
    qid: int,
    name: str,
    qtype: int,
    *,
    qclass: int = 1,
    rd: bool = True,
    cd: bool = False,
    do: bool = False,
    edns: bool = False,
) -> bytes:
    """A query for `name` (tests and the lab's stub use it), with an OPT record (1232
    bytes) when `edns` or `do`; ValueError on a bad name."""
    flags = (RD if rd else 0) | (CD if cd else 0)
    opt = b"\0" + struct.pack("!HHIH", OPT, 1232, DO if do else 0, 0) if edns or do else b""
    return (
        HEADER.pack(qid, flags, 1, 0, 0, 1 if opt else 0)
        + encode_name(name)
        + struct.pack("!HH", qtype, qclass)
        + opt
    )


def encode_name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split(".") if name.strip(".") else []:
        raw = label.encode("ascii")
        if not 0 < len(raw) <= MAX_LABEL:
            raise ValueError(f"{name!r} has an empty or over-long label")
        out += bytes([len(raw)]) + raw
    if len(out) + 1 > MAX_NAME:
        raise ValueError(f"{name!r} is longer than {MAX_NAME} bytes")
    return out + b"\0"
