"""The control socket against bad clients: each one is answered or cut off, and the server
goes on serving the others. Deadlines run on the autojump clock, so nothing really sleeps."""

import contextlib
import errno
import gc
import json
import logging
import resource
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from tidewire.node import control, unix_server

Handler = Callable[[dict[str, Any]], Any]


async def echo(req: dict[str, Any]) -> dict[str, Any]:
    return {"echo": req.get("x")}


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, handler: Handler = echo) -> AsyncIterator[Path]:
    path = tmp_path / "tw.sock"
    async with trio.open_nursery() as nursery:
        await nursery.start(control.serve, path, handler)
        yield path
        nursery.cancel_scope.cancel()


async def read_until_eof(stream: trio.SocketStream) -> bytes:
    """What the server says before it closes; a reset (it closed with bytes of ours
    unread) ends it as well as an end of file does."""
    buf = b""
    with contextlib.suppress(trio.BrokenResourceError):
        while chunk := await stream.receive_some(65536):
            buf += chunk
    return buf


async def read_line(stream: trio.SocketStream) -> dict[str, Any]:
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = await stream.receive_some(65536)
        assert chunk, "the server closed the connection before replying"
        buf += chunk
    reply = json.loads(buf)
    assert isinstance(reply, dict)
    return reply


async def ask(path: Path, line: bytes) -> dict[str, Any]:
    async with await trio.open_unix_socket(str(path)) as stream:
        await stream.send_all(line)
        return await read_line(stream)


async def test_deep_nesting_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    deepest = b"[" * control.MAX_DEPTH + b"]" * control.MAX_DEPTH
    async with serving(tmp_path) as path:
        # 2 KB of brackets: json.loads would raise RecursionError
        reply = await ask(path, b"[" * 1000 + b"]" * 1000 + b"\n")
        assert reply == {"ok": False, "error": "request nested deeper than 32 levels"}
        reply = await ask(path, b'{"cmd": "echo", "x": ' + deepest[1:-1] + b"}\n")
        assert reply["ok"] is True, "exactly MAX_DEPTH levels are allowed"
        reply = await ask(path, b'{"cmd": "echo", "x": "\\"[[[[' + b"[" * 100 + b'"}\n')
        assert reply == {"ok": True, "echo": '"[[[[' + "[" * 100}, "strings are not counted"
        for line in [b"5\n", b'"cmd"\n', b"null\n", b'{"cmd": 5}\n', b'{"x": "echo"}\n']:
            assert (await ask(path, line))["error"] == (
                'request must be a JSON object with a string "cmd"'
            ), line
        assert await ask(path, b'{"cmd": "echo", "x": 7}\n') == {"ok": True, "echo": 7}


async def test_a_client_that_hangs_up_before_the_reply(tmp_path: Path) -> None:
    """The reply meets a closed socket (EPIPE); what the request asked for still happens."""
    release = trio.Event()
    after: list[str] = []

    async def slow(req: dict[str, Any]) -> dict[str, Any]:
        if req["cmd"] == "down":
            await release.wait()
            return {"after_reply": lambda: after.append("stopped")}
        return await echo(req)

    async with serving(tmp_path, slow) as path:
        for _ in range(3):
            async with await trio.open_unix_socket(str(path)) as stream:
                await stream.send_all(b'{"cmd": "down"}\n')
                await trio.testing.wait_all_tasks_blocked()
            release.set()
            await trio.testing.wait_all_tasks_blocked()
            release = trio.Event()
        assert after == ["stopped"] * 3
        assert await ask(path, b'{"cmd": "echo", "x": 1}\n') == {"ok": True, "echo": 1}


async def test_a_client_that_resets_the_connection(tmp_path: Path) -> None:
    """Closing with our reply unread makes the server's next receive fail with ECONNRESET."""
    async with serving(tmp_path) as path:
        for _ in range(3):
            async with await trio.open_unix_socket(str(path)) as stream:
                await stream.send_all(b'{"cmd": "echo", "x": 1}\n{"cmd": "ec')
                await trio.testing.wait_all_tasks_blocked()
            await trio.testing.wait_all_tasks_blocked()
        assert await ask(path, b'{"cmd": "echo", "x": 2}\n') == {"ok": True, "echo": 2}


async def test_connections_beyond_the_limit_are_refused(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with serving(tmp_path) as path, contextlib.AsyncExitStack() as held:
        streams = []
        for i in range(control.MAX_CONNECTIONS):
            stream = await held.enter_async_context(await trio.open_unix_socket(str(path)))
            await stream.send_all(b'{"cmd": "echo", "x": %d}\n' % i)
            assert await read_line(stream) == {"ok": True, "echo": i}
            streams.append(stream)
        start = trio.current_time()
        async with await trio.open_unix_socket(str(path)) as extra:
            assert await read_until_eof(extra) == (
                b'{"ok": false, "error": "too many control connections (at most 32)"}\n'
            )
        assert trio.current_time() == start, "refused at once, not at a timeout"
        for i in (0, control.MAX_CONNECTIONS - 1):
            await streams[i].send_all(b'{"cmd": "echo", "x": "still"}\n')
            assert await read_line(streams[i]) == {"ok": True, "echo": "still"}
        await streams.pop().aclose()
        await trio.testing.wait_all_tasks_blocked()
        assert await ask(path, b'{"cmd": "echo", "x": 3}\n') == {"ok": True, "echo": 3}


async def test_a_slow_drip_is_cut_off_at_the_request_deadline(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """One byte a second never trips an idle timeout; the request deadline counts from the
    first byte."""

    async def drip(stream: trio.SocketStream) -> None:
        with contextlib.suppress(trio.BrokenResourceError):
            for _ in range(1000):
                await stream.send_all(b" ")
                await trio.sleep(1.0)

    async with serving(tmp_path) as path:
        with trio.fail_after(10 * control.REQUEST_DEADLINE):
            async with await trio.open_unix_socket(str(path)) as stream:
                start = trio.current_time()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(drip, stream)
                    said = await read_until_eof(stream)
                    assert trio.current_time() - start == pytest.approx(control.REQUEST_DEADLINE)
                    nursery.cancel_scope.cancel()
        assert json.loads(said) == {"ok": False, "error": "request not complete within 10 s"}
        assert await ask(path, b'{"cmd": "echo", "x": 4}\n') == {"ok": True, "echo": 4}


async def test_a_client_that_never_reads_its_replies(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The deadline runs from the request's first byte to the end of the reply: a request
    sent over 6 s whose reply is never read is dropped 10 s after it began."""

    async def big(req: dict[str, Any]) -> dict[str, Any]:
        return {"blob": "x" * 4_000_000}  # more than the socket buffers hold

    async with serving(tmp_path, big) as path:
        async with await trio.open_unix_socket(str(path)) as stream:
            await stream.send_all(b'{"cmd":')
            await trio.sleep(6.0)
            await stream.send_all(b' "big"}\n')
            await trio.sleep(control.REQUEST_DEADLINE - 6.0 - 0.5)
            await stream.send_all(b" ")  # the server is still there, stuck sending
            await trio.sleep(1.0)
            with pytest.raises(trio.BrokenResourceError):  # and now it has given up
                await stream.send_all(b" ")
        assert (await ask(path, b'{"cmd": "x"}\n'))["ok"] is True


async def test_a_connection_with_nothing_under_way_is_closed_when_idle(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with serving(tmp_path) as path, await trio.open_unix_socket(str(path)) as stream:
        start = trio.current_time()
        await trio.sleep(control.IDLE_TIMEOUT - 1)
        await stream.send_all(b'{"cmd": "echo", "x": 5}\n')
        assert await read_line(stream) == {"ok": True, "echo": 5}
        assert await read_until_eof(stream) == b""
        assert trio.current_time() - start == pytest.approx(2 * control.IDLE_TIMEOUT - 1)


@pytest.mark.parametrize("code", [errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM])
async def test_accept_out_of_descriptors_or_memory_is_survived(
    tmp_path: Path,
    autojump_clock: trio.testing.MockClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    code: int,
) -> None:
    real_accept = trio.SocketListener.accept
    failures = 3

    async def accept(self: trio.SocketListener) -> trio.SocketStream:
        nonlocal failures
        await trio.lowlevel.checkpoint()
        if failures:
            failures -= 1
            raise OSError(code, "no room")
        return await real_accept(self)

    monkeypatch.setattr(trio.SocketListener, "accept", accept)
    start = trio.current_time()
    async with serving(tmp_path) as path:
        assert await ask(path, b'{"cmd": "echo", "x": 6}\n') == {"ok": True, "echo": 6}
        assert trio.current_time() - start == pytest.approx(3 * unix_server.ACCEPT_BACKOFF)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "control socket: accept failed (no room); retrying"
    ]


INTERNAL = {"ok": False, "error": "internal error; see the daemon log"}


async def test_a_bug_in_the_handler_is_answered_and_logged_in_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def overflowing(req: dict[str, Any]) -> dict[str, Any]:
        if req["cmd"] == "report":
            return {"report": float(req["epoch"]) ** 40}  # 10**22 overflows
        return await echo(req)

    caplog.set_level(logging.INFO)  # the daemon's level without --verbose
    async with serving(tmp_path, overflowing) as path:
        for _ in range(2):
            reply = await ask(path, b'{"cmd": "report", "epoch": 10000000000000000000000}\n')
            assert reply == INTERNAL
        assert await ask(path, b'{"cmd": "echo", "x": 8}\n') == {"ok": True, "echo": 8}
    assert [(r.levelname, r.getMessage(), r.exc_info) for r in caplog.records] == [
        (
            "ERROR",
            "control request 'report' failed: OverflowError: (34, 'Numerical result out of range')",
            None,  # no traceback
        )
    ] * 2


async def test_a_reply_the_handler_cannot_have_meant_is_an_internal_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def buggy(req: dict[str, Any]) -> Any:
        if req["cmd"] == "set":
            return {"value": {1, 2}}  # cannot be sent as JSON
        if req["cmd"] == "list":
            return [1, 2]  # not a dict
        return await echo(req)

    async with serving(tmp_path, buggy) as path:
        assert await ask(path, b'{"cmd": "set"}\n') == INTERNAL
        assert await ask(path, b'{"cmd": "list"}\n') == INTERNAL
        assert await ask(path, b'{"cmd": "echo", "x": 8}\n') == {"ok": True, "echo": 8}
    assert [r.getMessage() for r in caplog.records] == [
        "control request 'set' failed: TypeError: Object of type set is not JSON serializable",
        "control request 'list' failed: TypeError: pop expected at most 1 argument, got 2",
    ]


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


async def test_memory_stays_bounded_while_many_clients_fill_their_buffers(
    tmp_path: Path,
) -> None:
    """RSS of this process (server and clients both): 200 connections send 60 KB each with
    no newline and hold on, then close. The unbounded version grew by about 12 MB here and,
    with 1,000 connections, kept 5 to 20 MB after they closed (glibc does not always give
    it back); bounded, only MAX_CONNECTIONS buffers ever exist, about 2 MB."""
    held = b"x" * 60_000
    async with serving(tmp_path) as path:
        assert (await ask(path, b'{"cmd": "warm"}\n'))["ok"]
        gc.collect()
        before = _rss_bytes()
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(200):
                stream = await stack.enter_async_context(await trio.open_unix_socket(str(path)))
                with contextlib.suppress(trio.BrokenResourceError):  # refused: over the limit
                    await stream.send_all(held)
            await trio.testing.wait_all_tasks_blocked()
            peak = _rss_bytes() - before
        await trio.testing.wait_all_tasks_blocked()
        gc.collect()
        after = _rss_bytes() - before
        assert peak < 5_000_000, f"RSS grew by {peak / 1e6:.1f} MB with the clients connected"
        assert after < 5_000_000, f"RSS stayed {after / 1e6:.1f} MB up after they closed"
        assert (await ask(path, b'{"cmd": "echo", "x": 9}\n'))["ok"]


async def test_a_connection_never_asks_for_more_than_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each receive on the server's side asks only for the room left in its one-line
    buffer, so a connection never holds more than MAX_LINE and a newline."""
    real_receive = trio.SocketStream.receive_some
    held: dict[int, int] = {}  # server-side stream -> bytes received so far (no newline sent)
    worst = 0

    async def receive_some(self: trio.SocketStream, max_bytes: int | None = None) -> bytes:
        nonlocal worst
        data = await real_receive(self, max_bytes)
        if self.socket.getsockname() == str(path):  # the accepted end, not the client's
            before = held.get(id(self), 0)
            worst = max(worst, before + (max_bytes or 0))
            held[id(self)] = before + len(data)
        return data

    monkeypatch.setattr(trio.SocketStream, "receive_some", receive_some)
    async with serving(tmp_path) as path:
        async with await trio.open_unix_socket(str(path)) as stream:
            for _ in range(3):
                await stream.send_all(b"x" * 30_000)
                await trio.testing.wait_all_tasks_blocked()
            said = await read_until_eof(stream)
        assert json.loads(said) == {"ok": False, "error": "request longer than 65536 bytes"}
    assert worst == control.MAX_LINE + 1
