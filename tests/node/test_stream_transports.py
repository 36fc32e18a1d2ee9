"""The tcp and tls transports on loopback (node/transports/stream.py, tcp.py, tls.py):
a dialler and a listener exchange link datagrams, garbage on the tcp port is closed
without a byte while another connection carries on, a TLS prober gets a certificate
and a web page (built-in or forwarded), and the limits hold (queue, backoff, sources,
the authentication deadline)."""

import socket
import ssl
import stat
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from tidewire.node.transports import connection as limits
from tidewire.node.transports import fallback
from tidewire.node.transports.certificate import ensure_self_signed
from tidewire.node.transports.stream import StreamTransport
from tidewire.node.transports.tcp import TcpTransport
from tidewire.node.transports.tls import TlsTransport
from tidewire.protocol.types import Endpoint
from tidewire.protocol.types import Path as LinkPath

from ..unit.test_skins_stream_ends import gfw_blocks
from .test_masked_transport import Recorder

LISTENER_KEY = bytes(range(32))
CLIENT_KEY = bytes(range(1, 33))
INITIATION = b"\x01\0\0\0" + bytes(144)
RESPONSE = b"\x02\0\0\0" + bytes(88)


def transport_datagram(i: int, size: int = 1452) -> bytes:
    return b"\x04\0\0\0" + bytes(4) + i.to_bytes(8, "little") + bytes(size - 16)


async def wait_until(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.01)


@asynccontextmanager
async def serving(*transports: tuple[StreamTransport, Recorder]) -> AsyncIterator[None]:
    """Serve each transport until the block ends, then close them."""
    async with trio.open_nursery() as nursery:
        for transport, recorder in transports:
            nursery.start_soon(transport.serve, recorder)
        yield
        nursery.cancel_scope.cancel()
    for transport, _ in transports:
        transport.close()


@asynccontextmanager
async def connected(
    kind: type[StreamTransport], tmp: Path
) -> AsyncIterator[tuple[StreamTransport, StreamTransport, Recorder, Recorder, Endpoint]]:
    """A listener and a dialler, served, after the dialler's first initiation arrived."""
    server, client = make(kind, tmp)
    srv, cli = Recorder(), Recorder()
    address: Endpoint = ("127.0.0.1", server.port)
    async with serving((server, srv), (client, cli)):
        client.send_now(INITIATION, address)  # dials
        await wait_until(lambda: srv.got)
        yield server, client, srv, cli, address


async def connect(port: int, first: bytes = b"") -> trio.socket.SocketType:
    probe = trio.socket.socket()
    await probe.connect(("127.0.0.1", port))
    if first:
        await probe.send(first)
    return probe


async def until_closed(probe: trio.socket.SocketType) -> bytes:
    """What the server sends before it closes (a reset counts as closed)."""
    out = b""
    with trio.fail_after(5):
        try:
            while chunk := await probe.recv(1000):
                out += chunk
        except ConnectionResetError:
            pass
    probe.close()
    return out


def make(kind: type[StreamTransport], tmp: Path) -> tuple[StreamTransport, StreamTransport]:
    server = kind(Counter(), own_public=LISTENER_KEY)
    client = kind(Counter(), own_public=CLIENT_KEY)
    if isinstance(server, TlsTransport):
        server.use_certificate(*ensure_self_signed(tmp))
    server.listen(0, mark=0)
    client.register(("127.0.0.1", server.port), LISTENER_KEY, server_name="provider.example")
    return server, client


@pytest.mark.parametrize("kind", [TcpTransport, TlsTransport])
async def test_a_dialler_and_a_listener_exchange_datagrams(
    kind: type[StreamTransport], tmp_path: Path
) -> None:
    async with connected(kind, tmp_path) as (server, client, srv, cli, address):
        data, path = srv.got[0]
        assert data == INITIATION and path.transport == kind.name
        assert path.address in server.conns  # keyed by the client's address
        server.send_now(RESPONSE, path.address)
        for i in range(100):
            server.add(transport_datagram(i), path.address)
        server.flush()
        await wait_until(lambda: len(cli.got) == 101)
        assert cli.got[0] == (RESPONSE, LinkPath(kind.name, address))
        assert [d for d, _ in cli.got[1:]] == [transport_datagram(i) for i in range(100)]
        assert not server.drops and not client.drops


async def test_the_first_segment_on_the_wire_is_exempt_from_the_first_packet_rules() -> None:
    """What a censor's classifier sees: the first data the tcp transport sends, read by
    a plain listening socket, under the rules of Wu et al. (implemented in the test)."""
    wire = trio.socket.socket()
    await wire.bind(("127.0.0.1", 0))
    wire.listen(8)
    address = wire.getsockname()
    client = TcpTransport(Counter(), own_public=CLIENT_KEY)
    client.register(address, LISTENER_KEY)
    async with serving((client, Recorder())):
        for _ in range(20):
            client.send_now(INITIATION, address)
            sock, _ = await wire.accept()
            with trio.fail_after(5):
                first = await sock.recv(65536)
            assert len(first) > len(INITIATION) and not gfw_blocks(first)
            assert not gfw_blocks(first[:len(INITIATION)])  # the packet, however it is cut
            sock.close()
            await wait_until(lambda: not client.conns)
            client._retry.clear()  # the closed connection carried nothing: skip the backoff
    wire.close()


async def test_http_garbage_on_the_tcp_port_is_closed_without_a_byte_and_others_go_on(
    tmp_path: Path,
) -> None:
    async with connected(TcpTransport, tmp_path) as (server, client, srv, _cli, address):
        probe = await connect(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert await until_closed(probe) == b""
        assert server.drops["tcp_stream_http"] + server.drops["tcp_stream_frame_size"] == 1
        client.send_now(transport_datagram(7, 64), address)  # the first connection still works
        await wait_until(lambda: len(srv.got) == 2)
        assert srv.got[1][0] == transport_datagram(7, 64)


async def test_a_prober_cannot_hold_slots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection that sends nothing valid is closed at the deadline; one more than
    MAX_PER_SOURCE from one address is closed at accept."""
    monkeypatch.setattr(limits, "AUTH_TIMEOUT", 0.3)
    monkeypatch.setattr(limits, "MAX_PER_SOURCE", 2)
    server, _ = make(TcpTransport, tmp_path)
    async with serving((server, Recorder())):
        waiting = await connect(server.port, b"ABCDEFGH")  # printable: the framing waits
        start = trio.current_time()
        silent = await connect(server.port)
        assert await until_closed(await connect(server.port)) == b""  # the third
        await wait_until(lambda: server.drops["tcp_too_many_connections"] == 1)
        assert await until_closed(waiting) == b""
        assert await until_closed(silent) == b""
        assert 0.25 < trio.current_time() - start < 2
        assert server.drops["tcp_auth_timeout"] == 2


async def test_a_full_queue_drops_and_the_lengths_stay_in_step(tmp_path: Path) -> None:
    async with connected(TcpTransport, tmp_path) as (server, client, srv, _cli, address):
        count = limits.QUEUE_BYTES // 1452 + 50
        for i in range(count):  # one batch, no flush between
            client.add(transport_datagram(i), address)
        client.flush()
        dropped = client.drops["tcp_queue_full"]
        assert 40 <= dropped <= 60
        client.add(transport_datagram(99999, 100), address)
        client.flush()
        await wait_until(lambda: len(srv.got) == 1 + count - dropped + 1)
        assert srv.got[-1][0] == transport_datagram(99999, 100)
        assert not server.drops


async def test_a_dialler_redials_at_once_after_a_connection_that_carried_data(
    tmp_path: Path,
) -> None:
    async with connected(TcpTransport, tmp_path) as (server, client, srv, cli, address):
        first = srv.got[0][1]
        server.send_now(RESPONSE, first.address)
        await wait_until(lambda: cli.got)  # the connection carried a datagram back
        server.conns[first.address].scope.cancel()  # the listener drops it
        await wait_until(lambda: not client.conns)
        client.send_now(INITIATION, address)  # no backoff: a new connection, a new port
        await wait_until(lambda: len(srv.got) == 2)
        again = srv.got[1][1]
        assert again.transport == "tcp" and again.address != first.address
        assert not client.drops


async def test_a_failed_dial_backs_off() -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    address = ("127.0.0.1", closed.getsockname()[1])
    closed.close()  # nobody listens there
    client = TcpTransport(Counter(), own_public=CLIENT_KEY)
    client.register(address, LISTENER_KEY)
    async with serving((client, Recorder())):
        client.send_now(INITIATION, address)
        await wait_until(lambda: client.drops["tcp_dial_failed"] == 1)
        client.send_now(INITIATION, address)
        assert client.drops["tcp_dial_backoff"] == 1
        assert client._retry[address][1] == 2 * limits.BACKOFF_FIRST


# -- tls: a prober sees a web site ---------------------------------------------------


async def tls_get(port: int, request: bytes) -> tuple[bytes, dict]:  # type: ignore[type-arg]
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = await trio.open_tcp_stream("127.0.0.1", port)
    tls = trio.SSLStream(raw, ctx, server_hostname="provider.example", https_compatible=True)
    await tls.do_handshake()
    cert = tls.getpeercert(binary_form=True)
    assert tls.version() == "TLSv1.3"
    await tls.send_all(request)
    reply = b""
    with trio.fail_after(5):
        while chunk := await tls.receive_some(65536):
            reply += chunk
    await trio.aclose_forcefully(tls)
    return reply, {"der": cert}


async def test_a_tls_prober_gets_a_certificate_and_the_static_page(tmp_path: Path) -> None:
    server, _ = make(TlsTransport, tmp_path)
    async with serving((server, Recorder())):
        request = b"GET / HTTP/1.1\r\nHost: provider.example\r\n\r\n"
        reply, info = await tls_get(server.port, request)
        assert reply.startswith(b"HTTP/1.1 200 OK\r\n") and reply.endswith(fallback.PAGE)
        assert b"\r\nContent-Length: %d\r\n" % len(fallback.PAGE) in reply
        assert info["der"]
        reply, _ = await tls_get(server.port, b"\x00\x01garbage" * 10 + b"\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 400 ")
        assert server.drops["tls_fallback"] == 2
    key = tmp_path / "tls-key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


async def test_a_tls_prober_is_forwarded_to_a_configured_upstream(tmp_path: Path) -> None:
    seen: list[bytes] = []

    async def upstream(s: trio.SocketStream) -> None:
        data = await s.receive_some(65536)
        seen.append(data)
        await s.send_all(b"HTTP/1.1 204 No Content\r\nServer: upstream\r\n\r\n")
        await s.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp, upstream, 0)
        up_port = listeners[0].socket.getsockname()[1]
        server, _ = make(TlsTransport, tmp_path)
        assert isinstance(server, TlsTransport)
        server.fallback = ("127.0.0.1", up_port)
        async with serving((server, Recorder())):
            request = b"GET /x HTTP/1.1\r\nHost: provider.example\r\n\r\n"
            reply, _ = await tls_get(server.port, request)
            assert reply == b"HTTP/1.1 204 No Content\r\nServer: upstream\r\n\r\n"
            assert seen == [request]
        nursery.cancel_scope.cancel()


def test_the_self_signed_certificate_is_made_once(tmp_path: Path) -> None:
    cert, key = ensure_self_signed(tmp_path)
    first = cert.read_bytes()
    assert ensure_self_signed(tmp_path) == (cert, key) and cert.read_bytes() == first
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)  # a pair ssl accepts
