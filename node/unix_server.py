"""What the node's two local sockets share: the control socket (control.py) and the
WireGuard API socket (uapi_server.py).

`bind` makes a Unix stream socket of mode 0600 in a 0755 directory (the umask is
narrowed around bind, so the socket is never briefly open to others). `accept_loop`
accepts until cancelled with a bound on live connections: one over the bound is handed
to `refuse` (a last word, then closed) in the loop itself; running out of descriptors
or buffers on accept is logged once per run of failures and retried after
ACCEPT_BACKOFF, never the end of the server. `serve_until_cancelled` removes the socket
file when the server stops.
"""

import contextlib
import errno
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

ACCEPT_BACKOFF = 0.1  # seconds to wait when accept() finds no descriptors or memory
_ACCEPT_EXHAUSTED = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}

Serve = Callable[[trio.SocketStream], Awaitable[None]]


async def bind(path: Path, *, backlog: int) -> trio.SocketListener:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        await sock.bind(str(path))
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    sock.listen(backlog)
    return trio.SocketListener(sock)


async def accept_loop(
    listener: trio.SocketListener,
    *,
    name: str,
    max_connections: int,
    serve: Serve,
    refuse: Serve,
    log: logging.Logger,
) -> None:
    open_connections = 0
    exhausted = False  # logged once for each run of failed accepts

    async def connection(stream: trio.SocketStream) -> None:
        nonlocal open_connections
        try:
            await serve(stream)
        finally:
            open_connections -= 1

    async with trio.open_nursery() as nursery:
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                if exc.errno not in _ACCEPT_EXHAUSTED:
                    raise
                if not exhausted:
                    log.warning("%s: accept failed (%s); retrying", name, exc.strerror)
                    exhausted = True
                await trio.sleep(ACCEPT_BACKOFF)
                continue
            exhausted = False
            if open_connections >= max_connections:
                await refuse(stream)
                continue
            open_connections += 1
            nursery.start_soon(connection, stream)


async def serve_until_cancelled(
    path: Path, listener: trio.SocketListener, loop: Awaitable[None]
) -> None:
    """Run the accept loop; on the way out close the listener and remove the socket."""
    try:
        await loop
    finally:
        with trio.CancelScope(shield=True):
            await listener.aclose()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
