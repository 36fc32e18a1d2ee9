"""The native send thread's per-read work (dataplane/src/tx.rs, `Outbound.handle`, the
same code the thread runs on each TUN read, without the I/O) against the Python path.

- Differential: random inner packets routed to the installed peer are sealed
  byte-identically to the Python path's `_seal` (tests/unit/test_dataplane_diff.py's
  `python_seal`), with consecutive counters from the session's one counter, and the
  counters Python takes afterwards follow on; super-packets read with TSO are cut as
  node/core/gso.py cuts them, then sealed segment by segment.
- The outer ECN field of each sealed datagram is the inner packet's (RFC 6040 section
  4.1, as DataPath's `_queue_sealed` copies it), so ECT and CE traffic stays native.
- What the thread leaves to Python (no sender, too big, SYN, fragments) is handed back
  as read; no route is the Python path's `tun_no_route`.
- Hostile TUN reads (random bytes, inconsistent virtio-net headers) never raise, and
  each ends exactly once: sealed, handed back or dropped (counted).
"""

from ipaddress import ip_network
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidewire.node.core.ecn import encapsulate_ecn, with_ecn
from tidewire.node.core.gso import Malformed, split
from tidewire.node.dataplane import load
from tidewire.protocol.link.constants import REKEY_AFTER_MESSAGES

from .test_dataplane_diff import SEND, python_seal
from .test_dataplane_offload import super_packets
from .test_dataplane_rx import ipv4, ipv6

native = load()
pytestmark = pytest.mark.skipif(
    native is None or not hasattr(native, "Outbound"),
    reason="tidewire._dataplane with its send thread is not built (scripts/setup)",
)

REMOTE = 0x0BADCAFE
HOST, PORT = "198.51.100.9", 51820
PEER = 3
MTU = 1420


def outbound(carry: int = MTU) -> tuple[Any, Any]:
    assert native is not None
    tx = native.Outbound(
        tun_fd=-1,
        vnet=False,
        tso=False,
        v4=-1,
        v6=-1,
        gso=True,
        limit=REKEY_AFTER_MESSAGES,
        mtu=MTU,
    )
    session = native.Session(send_key=SEND, recv_key=SEND, local_index=1, remote_index=REMOTE)
    tx.install(session, peer=PEER, host=HOST, port=PORT, ttl=60.0, carry=carry)
    nets = [ip_network("10.0.0.0/8"), ip_network("fd00::/16")]
    # the super-packets' 10.0.0.1 / fd00::1 and ipv4()'s 10.0.0.1 and ipv6()'s ::1 ... route to PEER
    routes = [
        (n.version, int(n.network_address).to_bytes(16, "big"), n.prefixlen, PEER) for n in nets
    ]
    routes.append((6, bytes(16), 120, PEER))  # ::/120 holds ipv6()'s destination ::1
    tx.set_routes(routes)
    return tx, session


_plain = st.builds(
    lambda p, ecn: bytes(with_ecn(p, ecn)),
    st.one_of(
        st.builds(lambda p: ipv4("10.1.2.3", 17, p), st.binary(max_size=1300)),
        st.builds(lambda p: ipv4("10.1.2.3", 6, p), st.binary(max_size=1300)),  # ACK flags
        st.builds(lambda p: ipv6(5, bytes(15) + b"\x01", 58, p), st.binary(max_size=1300)),
    ),
    st.integers(0, 3),
)


@settings(max_examples=80, deadline=None)
@given(st.lists(_plain, min_size=1, max_size=10))
def test_packets_seal_as_the_python_path_with_the_one_counter(packets: list[bytes]) -> None:
    tx, session = outbound()
    out = []
    for p in packets:
        out += tx.handle(p, False, False)
    assert [(h, port) for h, port, _, _ in out] == [(HOST, PORT)] * len(packets)
    assert [ecn for _, _, _, ecn in out] == [encapsulate_ecn(p) for p in packets]
    assert [d for _, _, d, _ in out] == [
        python_seal(SEND, REMOTE, i, p, MTU) for i, p in enumerate(packets)
    ]
    assert session.take_counters(1) == len(packets)  # Python's next seal follows on


@settings(max_examples=60, deadline=None)
@given(super_packets())
def test_tso_reads_are_cut_as_the_python_path_then_sealed(frame: bytes) -> None:
    tx, _ = outbound(carry=65535)
    out = tx.handle(frame, True, True)
    back = tx.take(1 << 20)
    try:
        segments = split(frame)
    except Malformed as exc:
        assert out == [] and back == [] and dict(tx.drops()) == {exc.reason: 1}
        return
    # SYN segments are Python's; the rest sealed in order
    assert len(out) + len(back) == len(segments)
    assert dict(tx.events()) == ({"tun_super_packets": 1} if len(segments) > 1 else {})
    sealed = [d for _, _, d, _ in out]
    mine = [s for s in segments if s not in back]
    assert sealed == [python_seal(SEND, REMOTE, i, s, MTU) for i, s in enumerate(mine)]


def test_what_the_thread_does_not_send_goes_back_as_read() -> None:
    tx, _ = outbound(carry=1000)
    big = ipv4("10.1.2.3", 17, b"x" * 1000)
    syn = ipv4("10.1.2.3", 6, b"", flags=0x02)
    frag = bytearray(ipv4("10.1.2.3", 17, b"x"))
    frag[6] = 0x20  # more fragments
    elsewhere = (
        ipv4("10.1.2.3", 17, b"x")[:16] + bytes([192, 0, 2, 1]) + ipv4("10.1.2.3", 17, b"x")[20:]
    )
    for p in (big, syn, bytes(frag), elsewhere):
        assert tx.handle(p, False, False) == []
    assert tx.take(10) == [big, syn, bytes(frag)]
    assert dict(tx.handed_back()) == {"too_big": 1, "syn": 1, "fragment": 1}
    assert dict(tx.drops()) == {"tun_no_route": 1}
    tx.remove(PEER)
    p = ipv4("10.1.2.3", 17, b"y")
    assert tx.handle(p, False, False) == [] and tx.take(10) == [p]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.booleans(), st.booleans())
def test_hostile_tun_reads_never_raise_and_each_ends_once(
    frame: bytes, vnet: bool, tso: bool
) -> None:
    tx, _ = outbound()
    out = tx.handle(frame, vnet, tso)
    ended = len(out) + len(tx.take(1 << 20)) + sum(n for _, n in tx.drops())
    # one packet per read without TSO; with it, a read's segments or its one refusal
    assert ended == 1 if not (vnet and tso) else ended >= 1
