"""What a `tls` connection that does not authenticate gets: an ordinary web server.

Either the built-in static page, served by node/http_server.py (real HTTP/1.1 headers,
one request, `Connection: close`), or a configured upstream (`[tls] fallback =
"127.0.0.1:8080"`) to which the bytes go both ways as they are, starting with every
byte the prober sent before we gave up on it. Either way the prober's request is read
from its first byte (`held`, kept by protocol/skins/stream_ends.StreamServer).

Bounds: the static page has http_server's limits (8 KiB head, 5 s); a forwarded
connection ends when either side closes or is silent for FORWARD_IDLE seconds.
"""

import logging

import trio

from tidewire.node import http_server
from tidewire.node.http_server import Request, Response

log = logging.getLogger("tidewire.node")

FORWARD_IDLE = 60.0
CONNECT_TIMEOUT = 5.0
CHUNK = 64 * 1024

PAGE = b"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Welcome</title>
<style>body{font-family:sans-serif;max-width:40em;margin:4em auto;color:#333}</style>
</head>
<body>
<h1>Welcome</h1>
<p>This site is being set up. Please check back soon.</p>
</body>
</html>
"""


class Prefixed(trio.abc.Stream):
    """A stream whose first reads return bytes already read from it."""

    def __init__(self, stream: trio.abc.Stream, prefix: bytes) -> None:
        self.stream = stream
        self.prefix = prefix

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self.prefix:
            n = len(self.prefix) if max_bytes is None else max_bytes
            out, self.prefix = self.prefix[:n], self.prefix[n:]
            return out
        return bytes(await self.stream.receive_some(max_bytes))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self.stream.aclose()


async def static_page(request: Request) -> Response:
    import email.utils  # here: the email package costs every node memory for one header

    headers = {"Server": "nginx", "Date": email.utils.formatdate(usegmt=True)}
    if request.method not in ("GET", "HEAD"):
        return Response(405, b"Method Not Allowed\n", headers={**headers, "Allow": "GET, HEAD"})
    if request.path not in ("/", "/index.html"):
        return Response(404, b"Not Found\n", headers=headers)
    return Response(200, PAGE, "text/html; charset=utf-8", headers)


async def serve(stream: trio.abc.Stream, held: bytes, upstream: tuple[str, int] | None) -> None:
    """Answer `stream` as a web server would (never raises on network trouble)."""
    if upstream is None:
        await http_server.serve_stream(Prefixed(stream, held), static_page)
        return
    try:
        with trio.fail_after(CONNECT_TIMEOUT):
            other = await trio.open_tcp_stream(*upstream)
    except (OSError, trio.TooSlowError) as exc:
        log.debug("tls fallback: cannot reach %s:%d (%s)", *upstream, exc)
        return
    async with other:
        try:
            await other.send_all(held)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_pump, stream, other, nursery.cancel_scope)
                nursery.start_soon(_pump, other, stream, nursery.cancel_scope)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass


async def _pump(src: trio.abc.Stream, dst: trio.abc.Stream, scope: trio.CancelScope) -> None:
    try:
        while True:
            with trio.move_on_after(FORWARD_IDLE) as idle:
                data = await src.receive_some(CHUNK)
            if idle.cancelled_caught or not data:
                break
            await dst.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass
    scope.cancel()
