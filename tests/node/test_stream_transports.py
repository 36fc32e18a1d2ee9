"""The tcp and tls transports on loopback (node/transports/stream.py, tcp.py, tls.py):
a dialler and a listener exchange link datagrams, garbage on the tcp port is closed
without a byte while another connection carries on, a TLS prober gets a certificate
and a web page (built-in or forwarded), and the limits hold (queue, backoff, sources,
the authentication deadline)."""

import socket
import ssl
import stat
from collections import Counter
from pathlib import Path

import pytest
import trio

from tidewire.node.transports import fallback, stream
from tidewire.node.transports.certificate import ensure_self_signed
from tidewire.node.transports.stream import StreamTransport
from tidewire.node.transports.tcp import TcpTransport
from tidewire.node.transports.tls import TlsTransport
from tidewire.protocol.types import Endpoint
from tidewire.protocol.types import Path as LinkPath

LISTENER_KEY = bytes(range(32))
CLIENT_KEY = bytes(range(1, 33))
INITIATION = b"\x01\0\0\0" + bytes(144)
RESPONSE = b"\x02\0\0\0" + bytes(88)


def transport_datagram(i: int, size: int = 1452) -> bytes:
    return b"\x04\0\0\0" + bytes(4) + i.to_bytes(8, "little") + bytes(size - 16)


class Recorder:
    def __init__(self) -> None:
        self.got: list[tuple[bytes, LinkPath]] = []
        self.batches = 0

    def receive(self, data: bytes, path: LinkPath, *, now: float) -> bool:
        self.got.append((data, path))
        return True

    def shed(self, *, now: float) -> None:
        pass

    def after_batch(self, *, data: bool) -> None:
        self.batches += 1


async def wait_until(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.01)


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
    server, client = make(kind, tmp_path)
    srv, cli = Recorder(), Recorder()
    address: Endpoint = ("127.0.0.1", server.port)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.serve, srv)
        nursery.start_soon(client.serve, cli)
        client.send_now(INITIATION, address)  # dials
        await wait_until(lambda: srv.got)
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
        nursery.cancel_scope.cancel()
    server.close()


async def test_http_garbage_on_the_tcp_port_is_closed_without_a_byte_and_others_go_on(
    tmp_path: Path,
) -> None:
    server, client = make(TcpTransport, tmp_path)
    srv, cli = Recorder(), Recorder()
    address: Endpoint = ("127.0.0.1", server.port)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.serve, srv)
        nursery.start_soon(client.serve, cli)
        client.send_now(INITIATION, address)
        await wait_until(lambda: srv.got)
        probe = trio.socket.socket()
        await probe.connect(address)
        await probe.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        with trio.fail_after(5):
            try:
                reply = await probe.recv(1000)
            except ConnectionResetError:
                reply = b""
        assert reply == b""
        probe.close()
        assert server.drops["tcp_stream_http"] + server.drops["tcp_stream_frame_size"] == 1
        client.send_now(transport_datagram(7, 64), address)  # the first connection still works
        await wait_until(lambda: len(srv.got) == 2)
        assert srv.got[1][0] == transport_datagram(7, 64)
        nursery.cancel_scope.cancel()
    server.close()


async def test_a_connection_that_sends_nothing_valid_is_closed_at_the_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream, "AUTH_TIMEOUT", 0.3)
    server, _ = make(TcpTransport, tmp_path)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.serve, Recorder())
        probe = trio.socket.socket()
        await probe.connect(("127.0.0.1", server.port))
        await probe.send(b"ABCDEFGH")  # a printable start: the framing waits for more
        start = trio.current_time()
        with trio.fail_after(5):
            assert await probe.recv(100) == b""
        assert 0.25 < trio.current_time() - start < 2
        assert server.drops["tcp_auth_timeout"] == 1
        probe.close()
        nursery.cancel_scope.cancel()
    server.close()


async def test_one_source_cannot_hold_every_slot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream, "MAX_PER_SOURCE", 2)
    server, _ = make(TcpTransport, tmp_path)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.serve, Recorder())
        probes = []
        for _ in range(3):
            probe = trio.socket.socket()
            await probe.connect(("127.0.0.1", server.port))
            probes.append(probe)
        with trio.fail_after(5):
            assert await probes[2].recv(100) == b""  # closed at accept
        await wait_until(lambda: server.drops["tcp_too_many_connections"] == 1)
        for probe in probes:
            probe.close()
        nursery.cancel_scope.cancel()
    server.close()


async def test_a_full_queue_drops_and_the_lengths_stay_in_step(tmp_path: Path) -> None:
    server, client = make(TcpTransport, tmp_path)
    srv = Recorder()
    address: Endpoint = ("127.0.0.1", server.port)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.serve, srv)
        nursery.start_soon(client.serve, Recorder())
        client.send_now(INITIATION, address)
        await wait_until(lambda: srv.got)
        count = stream.QUEUE_BYTES // 1452 + 50
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
        nursery.cancel_scope.cancel()
    server.close()


async def test_a_failed_dial_backs_off() -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    address = ("127.0.0.1", closed.getsockname()[1])
    closed.close()  # nobody listens there
    client = TcpTransport(Counter(), own_public=CLIENT_KEY)
    client.register(address, LISTENER_KEY)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.serve, Recorder())
        client.send_now(INITIATION, address)
        await wait_until(lambda: client.drops["tcp_dial_failed"] == 1)
        client.send_now(INITIATION, address)
        assert client.drops["tcp_dial_backoff"] == 1
        assert client._retry[address][1] == 2 * stream.BACKOFF_FIRST
        nursery.cancel_scope.cancel()


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
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.serve, Recorder())
        request = b"GET / HTTP/1.1\r\nHost: provider.example\r\n\r\n"
        reply, info = await tls_get(server.port, request)
        assert reply.startswith(b"HTTP/1.1 200 OK\r\n") and reply.endswith(fallback.PAGE)
        assert b"\r\nContent-Length: %d\r\n" % len(fallback.PAGE) in reply
        assert info["der"]
        reply, _ = await tls_get(server.port, b"\x00\x01garbage" * 10 + b"\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 400 ")
        assert server.drops["tls_fallback"] == 2
        nursery.cancel_scope.cancel()
    server.close()
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
        nursery.start_soon(server.serve, Recorder())
        request = b"GET /x HTTP/1.1\r\nHost: provider.example\r\n\r\n"
        reply, _ = await tls_get(server.port, request)
        assert reply == b"HTTP/1.1 204 No Content\r\nServer: upstream\r\n\r\n"
        assert seen == [request]
        nursery.cancel_scope.cancel()
    server.close()


def test_the_self_signed_certificate_is_made_once(tmp_path: Path) -> None:
    cert, key = ensure_self_signed(tmp_path)
    first = cert.read_bytes()
    assert ensure_self_signed(tmp_path) == (cert, key) and cert.read_bytes() == first
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)  # a pair ssl accepts
