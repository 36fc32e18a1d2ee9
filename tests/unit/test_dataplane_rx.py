"""The native receive thread's per-read work (dataplane/src/rx.rs, `Inbound.handle`, the
same code the thread runs on each UDP read, without the I/O) against the Python path.

- Differential: for random inner packets (IPv4 and IPv6, any size, allowed and foreign
  sources) sealed with random counters, repeated and reordered, what the native path
  writes to the TUN is exactly what the Python path (PythonOpener's checks in order,
  then node/core/packet.py's `inspect`, the trim and the allowed-IPs source check)
  accepts, and every other datagram is a drop with the Python path's reason or a
  hand-back.
- ECN (RFC 6040 section 4.2): under every outer field, with every inner one, the
  native path writes what node/core/ecn.py's `decapsulate` makes of the packet (CE
  marks, ECT(1)) or drops it as the Python path does (`ecn_ce_not_ect`), and counts
  the changed ones as the Python path's `ecn_outer_applied`.
- Hand-backs: handshakes, unknown indices, another endpoint, keepalives, control
  packets and SYNs go to Python with their reason, unopened or opened.
- Hostile input: random bytes, truncated and mutated datagrams never raise, and each
  datagram ends exactly once: in the TUN, dropped (counted) or handed back.
"""

from collections import Counter
from ipaddress import ip_network
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidewire.node.core.ecn import decapsulate, with_ecn
from tidewire.node.core.packet import inspect
from tidewire.node.dataplane import load
from tidewire.protocol.link.constants import REJECT_AFTER_MESSAGES

from .test_dataplane_diff import LOCAL, RECV, SEND, PythonOpener, python_seal

native = load()
pytestmark = pytest.mark.skipif(
    native is None or not hasattr(native, "Inbound"),
    reason="tidewire._dataplane with its receive thread is not built (scripts/setup)",
)

OVERLAY = bytes.fromhex("fd747700") + bytes(range(12))
HOST, PORT = "192.0.2.7", 51820
PEER, OTHER = 1, 2
ALLOWED = [ip_network("10.9.0.0/16"), ip_network("fd00:9::/64")]
FOREIGN = [ip_network("10.8.0.0/16"), ip_network("fd00:8::/64")]


def inbound() -> Any:
    assert native is not None
    rx = native.Inbound(sockets=[], tun_fd=-1, tun_gro=False, overlay=OVERLAY, limit=1 << 63)
    session = native.Session(send_key=SEND, recv_key=RECV, local_index=LOCAL, remote_index=9)
    rx.install(session, peer=PEER, host=HOST, port=PORT, ttl=60.0)
    routes = [
        (n.version, int(n.network_address).to_bytes(16, "big"), n.prefixlen, PEER) for n in ALLOWED
    ]
    routes += [
        (n.version, int(n.network_address).to_bytes(16, "big"), n.prefixlen, OTHER) for n in FOREIGN
    ]
    rx.set_routes(routes)
    return rx


def run(
    rx: Any, datagrams: list[bytes], host: str, port: int, ecn: int
) -> tuple[list[bytes], list[Any]]:
    """One read through the thread's work: the TUN's packets and the hand-backs."""
    return rx.handle(datagrams, host, port, ecn), rx.take(1 << 20)


def ipv4(src: str, proto: int, payload: bytes, flags: int = 0x10) -> bytes:
    body = payload if proto != 6 else bytes(13) + bytes([flags]) + bytes(6) + payload
    total = 20 + len(body)
    a = bytes(int(x) for x in src.split("."))
    return (
        bytes([0x45, 0, total >> 8, total & 255, 0, 0, 0x40, 0, 64, proto, 0, 0])
        + a
        + bytes([10, 0, 0, 1])
        + body
    )


def ipv6(src: int, dst: bytes, proto: int, payload: bytes, flags: int = 0x10) -> bytes:
    body = payload if proto != 6 else bytes(13) + bytes([flags]) + bytes(6) + payload
    return (
        bytes([0x60, 0, 0, 0, len(body) >> 8, len(body) & 255, proto, 64])
        + src.to_bytes(16, "big")
        + dst
        + body
    )


def python_path(opener: PythonOpener, datagram: bytes, outer_ecn: int = 0) -> bytes | str:
    """What the Python path does with one datagram of the peer under the outer ECN
    field `outer_ecn`: the inner packet it writes to the TUN, or its drop reason."""
    plain = opener.open(datagram, REJECT_AFTER_MESSAGES)
    if isinstance(plain, str):
        return plain
    inner = inspect(plain)
    assert inner is not None  # the strategy makes well-formed packets
    nets = [n for n in ALLOWED + FOREIGN if n.version == inner.version]
    addr = inner.src
    best = max(
        (
            n
            for n in nets
            if int(n.network_address)
            == addr >> (n.max_prefixlen - n.prefixlen) << (n.max_prefixlen - n.prefixlen)
        ),
        key=lambda n: n.prefixlen,
        default=None,
    )
    if best not in ALLOWED:
        return "inner_source_not_allowed"
    if outer_ecn & 1:  # as DataPath's receive: only ECT(1) and CE outside can change it
        opened = decapsulate(outer_ecn, plain)
        if opened is None:
            return "ecn_ce_not_ect"
        plain = bytes(opened)
    return plain[: inner.length]


_packets = st.one_of(
    st.builds(
        lambda src, proto, payload: ipv4(src, proto, payload),
        st.sampled_from(["10.9.1.2", "10.9.200.1", "10.8.0.5", "172.16.0.1"]),
        st.sampled_from([6, 17, 1]),
        st.binary(max_size=1400),
    ),
    st.builds(
        lambda src, proto, payload: ipv6(src, bytes(15) + b"\x01", proto, payload),
        st.sampled_from([0xFD000009 << 96 | 5, 0xFD000008 << 96 | 5, 1]),
        st.sampled_from([6, 17, 58]),
        st.binary(max_size=1400),
    ),
)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.tuples(_packets, st.integers(0, 9000), st.integers(0, 3)), min_size=1, max_size=12),
    st.lists(st.integers(0, 11), max_size=6),
    st.integers(0, 3),
)
def test_the_native_path_writes_what_the_python_path_accepts(
    items: list[tuple[bytes, int, int]], repeats: list[int], outer_ecn: int
) -> None:
    rx, opener = inbound(), PythonOpener(RECV, LOCAL)
    datagrams = [
        python_seal(RECV, LOCAL, counter, bytes(with_ecn(p, inner_ecn)), 1420)
        for p, counter, inner_ecn in items
    ]
    datagrams += [datagrams[i] for i in repeats if i < len(datagrams)]
    plains = [PythonOpener(RECV, LOCAL).open(d, REJECT_AFTER_MESSAGES) for d in datagrams]
    expected = [python_path(opener, d, outer_ecn) for d in datagrams]
    tun, back = run(rx, datagrams, HOST, PORT, outer_ecn)
    assert back == []  # nothing here is Python's: no SYNs (ACK flags), no control
    assert tun == [e for e in expected if isinstance(e, bytes)]
    drops = Counter({r: n for r, n in rx.drops()})
    assert drops == Counter(e for e in expected if isinstance(e, str))
    # what the outer field changed counts as the Python path counts it
    changed = sum(
        isinstance(e, bytes) and not isinstance(p, str) and e != p[: len(e)]
        for e, p in zip(expected, plains, strict=True)
    )
    assert dict(rx.events()) == ({"ecn_outer_applied": changed} if changed else {})


def test_an_outer_ce_marks_the_inner_packet_in_place_and_drops_a_not_ect_one() -> None:
    rx = inbound()
    ect = bytes(with_ecn(ipv4("10.9.1.2", 17, b"x" * 30), 0b10))
    not_ect = ipv4("10.9.1.2", 17, b"y" * 30)
    sealed = [python_seal(RECV, LOCAL, c, p, None) for c, p in enumerate([ect, not_ect, ect])]
    tun, back = run(rx, sealed[:2], HOST, PORT, 0b11)
    assert back == [] and tun == [bytes(with_ecn(ect, 0b11))]
    tun, back = run(rx, sealed[2:], HOST, PORT, 0b01)  # ECT(1) outside: ECT(0) becomes ECT(1)
    assert back == [] and tun == [bytes(with_ecn(ect, 0b01))]
    assert dict(rx.drops()) == {"ecn_ce_not_ect": 1}
    assert dict(rx.events()) == {"ecn_outer_applied": 2}
    # the dropped one still authenticated (the link's timers), but no inner byte counts
    assert rx.stats() == [(PEER, 3, 3, sum(map(len, sealed)), 2 * len(ect))]


def test_what_the_thread_does_not_handle_goes_back_with_its_reason() -> None:
    rx = inbound()
    data = ipv4("10.9.1.2", 17, b"x" * 30)
    sealed = python_seal(RECV, LOCAL, 1, data, None)
    other_index = python_seal(RECV, LOCAL + 1, 2, data, None)
    initiation = bytes([1, 0, 0, 0]) + bytes(144)
    tun, back = run(rx, [initiation, other_index], HOST, PORT, 0)
    assert tun == [] and [(b[0], b[1]) for b in back] == [
        ("raw", "handshake"),
        ("raw", "unknown_index"),
    ]
    _, back = run(rx, [sealed], "192.0.2.8", PORT, 0)
    assert [(b[0], b[1], b[5]) for b in back] == [("raw", "endpoint", "192.0.2.8")]
    keepalive = python_seal(RECV, LOCAL, 3, b"", None)
    control = python_seal(RECV, LOCAL, 4, ipv6(1, OVERLAY, 17, b"hello"), None)
    syn = python_seal(RECV, LOCAL, 5, ipv4("10.9.1.2", 6, b"", flags=0x02), None)
    tun, back = run(rx, [keepalive, control, syn, sealed], HOST, PORT, 0)
    assert [(b[0], b[1], b[2]) for b in back] == [
        ("opened", "keepalive", LOCAL),
        ("opened", "control", LOCAL),
        ("opened", "syn", LOCAL),
    ]
    assert back[1][3] == control and back[1][4][: len(ipv6(1, OVERLAY, 17, b"hello"))] == ipv6(
        1, OVERLAY, 17, b"hello"
    )
    assert tun == [data]
    assert dict(rx.handed_back()) == {
        "handshake": 1,
        "unknown_index": 1,
        "endpoint": 1,
        "keepalive": 1,
        "control": 1,
        "syn": 1,
    }
    # what the thread wrote counts for the peer: one datagram with data, its bytes
    assert rx.stats() == [(PEER, 1, 1, len(sealed), len(data))]
    assert rx.stats() == []  # swapped to zero


def test_a_removed_session_and_an_aged_one_go_back_to_python() -> None:
    rx = inbound()
    sealed = python_seal(RECV, LOCAL, 1, ipv4("10.9.1.2", 17, b"x"), None)
    rx.remove(LOCAL)
    _, back = run(rx, [sealed], HOST, PORT, 0)
    assert [b[1] for b in back] == ["unknown_index"]
    assert native is not None
    session = native.Session(send_key=SEND, recv_key=RECV, local_index=LOCAL, remote_index=9)
    rx.install(session, peer=PEER, host=HOST, port=PORT, ttl=0.0)
    _, back = run(rx, [sealed], HOST, PORT, 0)
    assert [b[1] for b in back] == ["aged"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=200),
            st.builds(
                lambda c, p, cut: python_seal(RECV, LOCAL, c, p, None)[:cut],
                st.integers(0, 50),
                _packets,
                st.integers(0, 1500),
            ),
            st.builds(
                lambda c, p, at, x: bytearray_flip(python_seal(RECV, LOCAL, c, p, None), at, x),
                st.integers(0, 50),
                _packets,
                st.integers(0, 2000),
                st.integers(1, 255),
            ),
            st.builds(
                lambda c, p: python_seal(RECV, LOCAL, c, p, None), st.integers(0, 50), _packets
            ),
        ),
        max_size=10,
    ),
    st.integers(0, 3),
)
def test_hostile_datagrams_never_raise_and_each_ends_once(datagrams: list[bytes], ecn: int) -> None:
    rx = inbound()
    tun, back = run(rx, datagrams, HOST, PORT, ecn)
    dropped = sum(n for _, n in rx.drops())
    assert len(tun) + len(back) + dropped == len(datagrams)


def bytearray_flip(data: bytes, at: int, x: int) -> bytes:
    b = bytearray(data)
    b[at % len(b)] ^= x
    return bytes(b)
