"""A tiny HTTP/1.1 server on trio for local endpoints (/metrics, the dashboard): no framework.

One request per connection, answered with `Connection: close`: scrapers and a
polling page reconnect, and the server keeps no state between requests. What a
client can cost is bounded:

- the request head (request line and headers) is at most MAX_HEAD bytes, read into
  one bytearray that never holds more; a body is not read (only GET and HEAD are
  served, so a request with one is refused with 413);
- a connection has DEADLINE seconds from accept to the end of its reply;
- at most `max_connections` at once; one more gets 503 and is closed within LINGER.

Routing is the caller's: `handler(request)` returns a `Response`; an exception in it is
logged in one line and answered 500, and ends that connection only.
"""

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio

log = logging.getLogger("tidewire.http")

MAX_HEAD = 8 * 1024  # bytes of request line and headers
MAX_HEADERS = 64
DEADLINE = 5.0  # seconds from accept to the last byte of the reply
MAX_CONNECTIONS = 16
LINGER = 0.5  # seconds to drain a refused request's rest before closing

REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # without the query string
    headers: dict[str, str]  # names in lower case


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


def text(status: int, message: str = "") -> Response:
    return Response(status, (message or REASONS.get(status, "")).encode() + b"\n")


Handler = Callable[[Request], Awaitable[Response]]


class _BadRequest(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


async def serve(
    host: str,
    port: int,
    handler: Handler,
    *,
    max_connections: int = MAX_CONNECTIONS,
    task_status: Any = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on host:port and serve until cancelled; `started` gets the bound port."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()[1]
    active = [0]

    async def connection(stream: trio.SocketStream) -> None:
        if active[0] >= max_connections:
            with trio.move_on_after(LINGER), contextlib.suppress(trio.BrokenResourceError, OSError):
                await stream.send_all(_encode(text(503, "too many connections"), head=False))
                await _linger(stream)  # bounded by LINGER in all
            await stream.aclose()
            return
        active[0] += 1
        try:
            await _connection(stream, handler)
        finally:
            active[0] -= 1

    task_status.started(bound)
    await trio.serve_listeners(connection, listeners)


async def serve_stream(stream: trio.abc.Stream, handler: Handler) -> None:
    """One request on an open stream (the tls skin's fallback hands it one), then close."""
    await _connection(stream, handler)


async def _connection(stream: trio.abc.Stream, handler: Handler) -> None:
    try:
        async with stream:
            with trio.move_on_after(DEADLINE) as scope:
                try:
                    request = await _read_request(stream)
                except _BadRequest as exc:
                    await stream.send_all(_encode(text(exc.status), head=False))
                    await _linger(stream)
                    return
                try:
                    response = await handler(request)
                except Exception as exc:  # a bug in a route ends this connection only
                    log.error("HTTP %s %.60s failed: %s", request.method, request.path, exc)
                    response = text(500)
                await stream.send_all(_encode(response, head=request.method == "HEAD"))
            if scope.cancelled_caught:
                log.debug("HTTP connection not done within %g s; closed", DEADLINE)
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
        log.debug("HTTP connection dropped: %s", exc)


async def _linger(stream: trio.abc.Stream) -> None:
    """Half-close, then read and discard a little of what the client still sends, so
    closing with its unread bytes does not reset the connection before it reads our reply."""
    if isinstance(stream, trio.abc.HalfCloseableStream):  # a TLS stream cannot half-close
        await stream.send_eof()
    with trio.move_on_after(LINGER):
        left = MAX_HEAD * 8
        while left > 0 and (chunk := await stream.receive_some(MAX_HEAD)):
            left -= len(chunk)


async def _read_request(stream: trio.abc.Stream) -> Request:
    buf = bytearray()
    while b"\r\n\r\n" not in buf:
        room = MAX_HEAD - len(buf)
        if room <= 0:
            raise _BadRequest(431)
        chunk = await stream.receive_some(room)
        if not chunk:
            raise _BadRequest(400)
        buf += chunk
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    try:
        lines = head.decode("ascii").split("\r\n")
    except UnicodeDecodeError:
        raise _BadRequest(400) from None
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1].startswith("/"):
        raise _BadRequest(400)
    if len(lines) - 1 > MAX_HEADERS:
        raise _BadRequest(431)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise _BadRequest(400)
        headers[name.lower()] = value.strip()
    if rest or headers.get("content-length", "0") != "0" or "transfer-encoding" in headers:
        raise _BadRequest(413)
    return Request(parts[0], parts[1].split("?", 1)[0], headers)


def _encode(response: Response, *, head: bool) -> bytes:
    lines = [
        f"HTTP/1.1 {response.status} {REASONS.get(response.status, 'Unknown')}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        "Connection: close",
        "Cache-Control: no-store",
        "X-Content-Type-Options: nosniff",
        *(f"{k}: {v}" for k, v in response.headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (b"" if head else response.body)
