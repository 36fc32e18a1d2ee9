"""The control socket: JSON lines over a Unix socket (mode 0600) next to the daemon.

Each request is one JSON object on one line, `{"cmd": NAME, ...}`; each reply is
one line, `{"ok": true, ...}` or `{"ok": false, "error": SENTENCE}`. A malformed
or unknown request gets an error reply and the daemon carries on. Requests are
bounded (64 KiB a line) and a connection that sends nothing for 30 s is closed.
"""

import contextlib
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

log = logging.getLogger("tidewire.control")

MAX_LINE = 64 * 1024
IDLE_TIMEOUT = 30.0

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class RequestError(Exception):
    """A request the daemon refuses; the message is the reply's error sentence."""


async def serve(
    path: Path, handler: Handler, *, task_status: Any = trio.TASK_STATUS_IGNORED
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    if path.exists() or path.is_symlink():
        path.unlink()  # stale: the daemon lock is ours, so no live daemon owns it
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        await sock.bind(str(path))
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    sock.listen(16)
    listener = trio.SocketListener(sock)
    task_status.started()
    try:
        async with trio.open_nursery() as nursery:
            while True:
                stream = await listener.accept()
                nursery.start_soon(_connection, stream, handler)
    finally:
        with trio.CancelScope(shield=True):
            await listener.aclose()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


async def _connection(stream: trio.SocketStream, handler: Handler) -> None:
    buf = b""
    async with stream:
        while True:
            with trio.move_on_after(IDLE_TIMEOUT) as idle:
                chunk = await stream.receive_some(65536)
            if idle.cancelled_caught or not chunk:
                return
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                reply = await _handle_line(line, handler)
                after = reply.pop("after_reply", None)
                await stream.send_all(json.dumps(reply).encode() + b"\n")
                if after is not None:
                    after()  # e.g. `down`: stop only once the caller has its answer
            if len(buf) > MAX_LINE:
                reply = {"ok": False, "error": f"request longer than {MAX_LINE} bytes"}
                await stream.send_all(json.dumps(reply).encode() + b"\n")
                return


async def _handle_line(line: bytes, handler: Handler) -> dict[str, Any]:
    try:
        request = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return {"ok": False, "error": "request is not a JSON object on one line"}
    if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
        return {"ok": False, "error": 'request must be a JSON object with a string "cmd"'}
    try:
        result = await handler(request)
    except RequestError as exc:
        return {"ok": False, "error": str(exc)}
    except Exception:  # a bug must not take the daemon down with it
        log.exception("control request %r failed", request.get("cmd"))
        return {"ok": False, "error": "internal error; see the daemon log"}
    return {"ok": True, **result}


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
