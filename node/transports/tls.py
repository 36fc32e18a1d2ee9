"""The `tls` transport: the stream frames inside a real TLS 1.3 connection (Python's ssl,
through trio.SSLStream), and a web server for anything that does not authenticate.

Server: TLS 1.3 only, ALPN http/1.1, the configured certificate or the self-signed one
(certificate.py). The TLS handshake and the first frame that unwraps share the
AUTH_TIMEOUT of stream.py; a connection that completes TLS but sends anything else
(an HTTP request, garbage, nothing in time) is handed to fallback.py with every
application byte it sent, so an active prober sees a web site. One that fails the TLS
handshake itself is closed, as any web server would close it.

Client: TLS 1.3, SNI = the host of the endpoint URL when it is a name (an IP literal
sends none, as browsers do), ALPN http/1.1, and no certificate verification: the
provider is authenticated by the Noise session inside, and a censor that intercepts
TLS sees frames it cannot open and a handshake that fails.

The ssl module (and libssl) is loaded only when a node listens on tls:// or first dials
a tls:// endpoint (cli/lazy_modules.py defers it: a router that does not use the skin
does not pay its memory).

Overhead: per TLS record (up to 16 KiB of frames) 22 bytes (5 header, 1 content type,
16 tag), on top of the stream frames' own (protocol/skins/stream_ends.py).
"""

import ssl
from pathlib import Path
from typing import Any

import trio

from tidewire.node.errors import NodeError
from tidewire.node.transports.stream import StreamTransport
from tidewire.protocol.types import TLS

ALPN = ["http/1.1"]
RECORD_OVERHEAD = 22


def client_context() -> "ssl.SSLContext":
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the Noise session authenticates the provider
    ctx.set_alpn_protocols(ALPN)
    return ctx


def server_context(certificate: Path, key: Path) -> "ssl.SSLContext":
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_alpn_protocols(ALPN)
    try:
        ctx.load_cert_chain(certificate, key)
    except (OSError, ssl.SSLError) as exc:
        raise NodeError(
            f"[tls] cannot use certificate {certificate} with key {key}: {exc}"
        ) from None
    return ctx


class TlsTransport(StreamTransport):
    name = TLS
    overhead = StreamTransport.overhead + RECORD_OVERHEAD  # at most: a record holds many

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.client_ctx: ssl.SSLContext | None = None  # made on first dial: ssl loads late
        self.server_ctx: ssl.SSLContext | None = None  # set before listening
        self.fallback: tuple[str, int] | None = None  # None: the built-in page

    def use_certificate(self, certificate: Path, key: Path) -> None:
        self.server_ctx = server_context(certificate, key)

    async def open_client(self, sock: trio.socket.SocketType, server_name: str | None) -> Any:
        if self.client_ctx is None:
            self.client_ctx = client_context()
        stream = trio.SSLStream(
            trio.SocketStream(sock),
            self.client_ctx,
            server_hostname=server_name,
            https_compatible=True,
        )
        try:
            await stream.do_handshake()
        except trio.BrokenResourceError as exc:
            raise OSError(f"TLS handshake: {exc.__cause__ or exc}") from None
        return stream

    async def open_server(self, stream: trio.SocketStream) -> Any:
        assert self.server_ctx is not None, "use_certificate before listening"
        tls = trio.SSLStream(stream, self.server_ctx, server_side=True, https_compatible=True)
        await tls.do_handshake()  # BrokenResourceError: counted and closed by the caller
        return tls

    async def refuse(self, stream: trio.abc.Stream, held: bytes) -> None:
        from tidewire.node.transports import fallback  # and its HTTP server: only when used

        self.drops["tls_fallback"] += 1
        await fallback.serve(stream, held, self.fallback)
