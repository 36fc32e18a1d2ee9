"""The control socket: JSON lines over a Unix socket (mode 0600) next to the daemon.

Each request is one JSON object on one line, `{"cmd": NAME, ...}`; each reply is
one line, `{"ok": true, ...}` or `{"ok": false, "error": SENTENCE}`. The socket is
root-only, yet one bad client must not stop the daemon or grow its memory, so:

- at most MAX_CONNECTIONS at once; one more gets a single error line and is closed;
- a line is at most MAX_LINE bytes, read into one bytearray per connection that never
  holds more (each receive asks only for the room left), and nested at most MAX_DEPTH
  deep, checked on the raw bytes before json.loads can recurse;
- a request has REQUEST_DEADLINE from its first byte to the end of its reply; the
  handler itself is not cut short (cancelling it could leave a peer half-added), but
  if it overran, its reply gets only _GRACE to be taken. A connection with no
  request under way is closed after IDLE_TIMEOUT;
- whatever goes wrong on one connection (a hang-up, a reset, a bug in the handler,
  which is answered "internal error" and logged in one line) ends that connection
  only; running out of file descriptors or buffers on accept is logged once and
  retried after ACCEPT_BACKOFF.
"""

import contextlib
import json
import logging
import re
import socket
from collections.abc import Awaitable, Callable
from itertools import accumulate
from pathlib import Path
from typing import Any

import trio

from tidewire.node import unix_server

log = logging.getLogger("tidewire.control")

MAX_LINE = 64 * 1024  # bytes in one request line, without its newline
MAX_DEPTH = 32  # nested arrays and objects in one request; the commands need 3
MAX_CONNECTIONS = 32  # the CLI uses one at a time; a handful of scripts fit
REQUEST_DEADLINE = 10.0  # seconds from a request's first byte to the end of its reply
IDLE_TIMEOUT = 30.0  # seconds a connection may wait with no request under way
_GRACE = 1.0  # seconds to hand over a last line: an error, or a reply the handler was slow with
_LOGGED = 60  # characters of a command name or exception message that reach the log

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class RequestError(Exception):
    """A request the daemon refuses; the message is the reply's error sentence."""


class _Refused(Exception):
    """The request cannot be read; the message is the error sentence, then we close."""


async def serve(
    path: Path, handler: Handler, *, task_status: Any = trio.TASK_STATUS_IGNORED
) -> None:
    if path.exists() or path.is_symlink():
        path.unlink()  # stale: the daemon lock is ours, so no live daemon owns it
    listener = await unix_server.bind(path, backlog=MAX_CONNECTIONS)
    task_status.started()
    loop = unix_server.accept_loop(
        listener,
        name="control socket",
        max_connections=MAX_CONNECTIONS,
        serve=lambda stream: _connection(stream, handler),
        refuse=_refuse,
        log=log,
    )
    await unix_server.serve_until_cancelled(path, listener, loop)


async def _refuse(stream: trio.SocketStream) -> None:
    """One error line and close, in the accept loop itself: the line fits in the empty
    send buffer of a new socket, so this does not wait on the client."""
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        await _last_word(stream, f"too many control connections (at most {MAX_CONNECTIONS})")
    await stream.aclose()


async def _connection(stream: trio.SocketStream, handler: Handler) -> None:
    try:
        async with stream:
            await _requests(stream, handler)
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
        log.debug("control connection dropped: %s", exc)  # a client that hung up
    except Exception as exc:  # a bug here must end this connection, not the daemon
        log.error("control connection failed: %s", _describe(exc))
        log.debug("control connection failed", exc_info=True)


async def _requests(stream: trio.SocketStream, handler: Handler) -> None:
    lines = _LineReader(stream)
    while True:
        if not lines.buf:
            with trio.move_on_after(IDLE_TIMEOUT):
                await lines.fill()
            if not lines.buf:
                return  # idle for too long, or the client is done
        deadline = trio.current_time() + REQUEST_DEADLINE  # from the request's first byte
        try:
            with trio.move_on_at(deadline) as reading:
                line = await lines.read_line()
        except _Refused as exc:
            await _last_word(stream, str(exc))
            return
        if reading.cancelled_caught:
            await _last_word(stream, f"request not complete within {REQUEST_DEADLINE:g} s")
            return
        if line is None:
            return  # hung up halfway through a line
        reply, after = await _handle_line(line, handler)
        try:
            # a slow handler is not the client's fault: it still gets _GRACE to take the reply
            with trio.move_on_at(max(deadline, trio.current_time() + _GRACE)) as sending:
                await stream.send_all(reply)
        finally:
            if after is not None:
                after()  # e.g. `down`: stop once the caller has its answer, or has left
        if sending.cancelled_caught:
            return  # the client does not read its replies


async def _last_word(stream: trio.SocketStream, error: str) -> None:
    with trio.move_on_after(_GRACE):
        await stream.send_all(_encode({"ok": False, "error": error}))


class _LineReader:
    """One connection's input: a bytearray that never grows past one line and its newline."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buf = bytearray()
        self._scanned = 0  # bytes of buf known to hold no newline

    async def fill(self) -> bool:
        """Receive what fits; False once the client has closed its side."""
        room = MAX_LINE + 1 - len(self.buf)
        if room <= 0:
            raise _Refused(f"request longer than {MAX_LINE} bytes")
        chunk = await self.stream.receive_some(room)
        self.buf += chunk
        return bool(chunk)

    async def read_line(self) -> bytes | None:
        """The next line without its newline, or None if the client closed before it."""
        while True:
            end = self.buf.find(b"\n", self._scanned)
            if end >= 0:
                line = bytes(self.buf[:end])
                del self.buf[: end + 1]
                self._scanned = 0
                return line
            self._scanned = len(self.buf)
            if not await self.fill():
                return None


async def _handle_line(line: bytes, handler: Handler) -> tuple[bytes, Callable[[], object] | None]:
    """The encoded reply to one line, and what to do once it is sent."""
    if _depth(line) > MAX_DEPTH:
        return _error(f"request nested deeper than {MAX_DEPTH} levels"), None
    try:
        request = json.loads(line)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return _error("request is not a JSON object on one line"), None
    if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
        return _error('request must be a JSON object with a string "cmd"'), None
    try:
        result = await handler(request)
        after = result.pop("after_reply", None)
        return _encode({"ok": True, **result}), after
    except RequestError as exc:
        return _error(str(exc)), None
    except Exception as exc:  # a bug must not take the daemon down with it
        log.error("control request %.*r failed: %s", _LOGGED, request["cmd"], _describe(exc))
        log.debug("control request %.*r failed", _LOGGED, request["cmd"], exc_info=True)
        return _error("internal error; see the daemon log"), None


_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = bytes(sorted(set(range(256)) - set(b"[]{}")))


def _depth(line: bytes) -> int:
    """How deep arrays and objects nest in `line`, brackets inside strings not counted."""
    brackets = _STRING.sub(b"", line).translate(None, _NOT_BRACKET)
    return max(accumulate(1 if b in b"[{" else -1 for b in brackets), default=0)


def _encode(reply: dict[str, Any]) -> bytes:
    return json.dumps(reply).encode() + b"\n"


def _error(sentence: str) -> bytes:
    return _encode({"ok": False, "error": sentence})


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:_LOGGED]}"


def request(path: Path, message: dict[str, Any], *, timeout: float = 10.0) -> dict[str, Any]:
    """Blocking client for the CLI: send one request, return the reply object."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(json.dumps(message).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    reply = json.loads(buf)
    if not isinstance(reply, dict):
        raise ValueError("the daemon's reply is not a JSON object")
    return reply
