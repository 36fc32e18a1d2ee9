"""The provider's resolver (node/resolver.py) on loopback, with a fake upstream: answers
over UDP and TCP, the cache spares the upstream, hostile queries are dropped and
counted, a client over its rate is dropped, and a dead upstream gives SERVFAIL. Queries
with and without DO or CD are cached apart."""

import socket
import struct
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from tidewire.node import resolver
from tidewire.node.core import dnsmsg

A = 1


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def fake_upstream(sock: trio.socket.SocketType, seen: Counter[bytes]) -> None:
    """Answer every query with 192.0.2.7, TTL 300."""
    while True:
        data, addr = await sock.recvfrom(4096)
        q = dnsmsg.parse_query(data)
        assert q is not None
        seen[q.qname] += 1
        flags = dnsmsg.QR | dnsmsg.RD | dnsmsg.RA
        rr = b"\xc0\x0c" + struct.pack("!HHIH", A, 1, 300, 4) + bytes([192, 0, 2, 7])
        await sock.sendto(
            struct.pack("!HHHHHH", q.id, flags, 1, 1, 0, 0) + data[12 : q.end] + rr, addr
        )


async def ask_udp(port: int, query: bytes, timeout: float = 2) -> bytes | None:
    with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        await s.connect(("127.0.0.1", port))
        await s.send(query)
        with trio.move_on_after(timeout):
            return await s.recv(4096)
    return None


@asynccontextmanager
async def serving(seen: Counter[bytes]) -> AsyncIterator[tuple[resolver.Resolver, int]]:
    """A resolver on a free loopback port whose upstream is `fake_upstream`."""
    up = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await up.bind(("127.0.0.1", 0))
    port = free_port()
    r = resolver.Resolver(addresses=["127.0.0.1"], upstreams=[up.getsockname()], port=port)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(fake_upstream, up, seen)
        await nursery.start(r.serve)
        yield r, port
        nursery.cancel_scope.cancel()


async def test_udp_tcp_cache_and_hostile_input() -> None:
    seen: Counter[bytes] = Counter()
    async with serving(seen) as (r, port):
        reply = await ask_udp(port, dnsmsg.build_query(0x4242, "www.example.test", A))
        assert (
            reply is not None and reply[:2] == b"\x42\x42" and reply.endswith(bytes([192, 0, 2, 7]))
        )
        again = await ask_udp(port, dnsmsg.build_query(0x0101, "WWW.example.test", A))
        assert again is not None and again[:2] == b"\x01\x01"
        assert seen[b"\x03www\x07example\x04test\x00"] == 1 and r.counts["cached"] == 1
        # TCP, two queries on one connection (RFC 7766)
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        for qid in (7, 8):
            q = dnsmsg.build_query(qid, "tcp.example.test", A)
            await stream.send_all(struct.pack("!H", len(q)) + q)
            head = await stream.receive_some(2)
            assert len(head) == 2
            (n,) = struct.unpack("!H", head)
            body = b""
            while len(body) < n:
                body += await stream.receive_some(n - len(body))
            assert struct.unpack_from("!H", body)[0] == qid and body.endswith(bytes([192, 0, 2, 7]))
        await stream.aclose()
        # hostile: garbage and a response sent as a query are dropped, counted, not fatal
        assert await ask_udp(port, b"\xff" * 40, timeout=0.3) is None
        assert await ask_udp(port, reply, timeout=0.3) is None
        assert r.drops["malformed"] == 2
        assert await ask_udp(port, dnsmsg.build_query(9, "www.example.test", A)) is not None


async def test_do_and_cd_each_have_their_own_cache_entry() -> None:
    seen: Counter[bytes] = Counter()
    name = b"\x04sign\x07example\x04test\x00"
    async with serving(seen) as (r, port):
        for n, (do, cd) in enumerate([(False, False), (True, False), (False, True)]):
            q = dnsmsg.build_query(n, "sign.example.test", A, do=do, cd=cd)
            assert await ask_udp(port, q) is not None
            assert seen[name] == n + 1, (do, cd)  # a miss: asked upstream
        for n, (do, cd) in enumerate([(True, False), (False, False), (False, True)]):
            q = dnsmsg.build_query(n, "sign.example.test", A, do=do, cd=cd)
            assert await ask_udp(port, q) is not None
        assert seen[name] == 3 and r.counts["cached"] == 3


async def test_rate_limit_and_dead_upstream() -> None:
    port = free_port()
    dead = ("127.0.0.1", free_port())  # nothing listens: ICMP port unreachable
    r = resolver.Resolver(addresses=["127.0.0.1"], upstreams=[dead], port=port)
    r.limiter.burst = r.limiter.rate = 2
    async with trio.open_nursery() as nursery:
        await nursery.start(r.serve)
        reply = await ask_udp(port, dnsmsg.build_query(5, "x.test", A))
        assert reply is not None and struct.unpack_from("!H", reply, 2)[0] & 0xF == dnsmsg.SERVFAIL
        for _ in range(3):
            await ask_udp(port, dnsmsg.build_query(6, "x.test", A), timeout=0.2)
        assert r.drops["rate_limited"] >= 1
        nursery.cancel_scope.cancel()


def test_upstreams_from_resolv_conf_never_itself(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("# x\nnameserver 9.9.9.9\nnameserver nonsense\nnameserver 10.99.0.1\n")
    assert resolver.system_upstreams(conf) == [("9.9.9.9", 53), ("10.99.0.1", 53)]
    r = resolver.Resolver(addresses=["10.99.0.1"], upstreams=resolver.system_upstreams(conf))
    assert r.upstreams == [("9.9.9.9", 53)]
    assert resolver.system_upstreams(tmp_path / "absent") == []
