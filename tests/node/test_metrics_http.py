"""The Prometheus endpoint over real loopback sockets: GET /metrics gets the registry's text
with the 0.0.4 content type; other paths 404, other methods 405; an oversized head, a
slow client and one connection too many are each refused without disturbing the rest."""

import trio

from tidewire.node import http_server, metrics_http
from tidewire.node.metrics import Registry


async def start(nursery: trio.Nursery, **kwargs: object) -> tuple[int, Registry]:
    reg = Registry()
    reg.value("tidewire_peers", "Configured peers.", lambda: 2, kind="gauge")
    if kwargs:
        port = await nursery.start(
            lambda task_status: http_server.serve(
                "127.0.0.1",
                0,
                metrics_http.handler(reg.render),
                task_status=task_status,
                **kwargs,  # type: ignore[arg-type]
            )
        )
    else:
        port = await nursery.start(metrics_http.serve, "127.0.0.1", 0, reg.render)
    return port, reg


async def exchange(port: int, data: bytes) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(data)
        out = b""
        while chunk := await stream.receive_some(65536):
            out += chunk
    return out


async def test_get_metrics_returns_the_registry_text() -> None:
    async with trio.open_nursery() as nursery:
        port, reg = await start(nursery)
        reply = await exchange(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"Content-Type: text/plain; version=0.0.4" in head
        assert body.decode() == reg.render() and b"tidewire_peers 2\n" in body
        head_only = await exchange(port, b"HEAD /metrics HTTP/1.1\r\n\r\n")
        assert head_only.startswith(b"HTTP/1.1 200") and head_only.endswith(b"\r\n\r\n")
        nursery.cancel_scope.cancel()


async def test_other_paths_and_methods_are_refused() -> None:
    async with trio.open_nursery() as nursery:
        port, _ = await start(nursery)
        assert (await exchange(port, b"GET / HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 404")
        posted = await exchange(port, b"DELETE /metrics HTTP/1.1\r\n\r\n")
        assert posted.startswith(b"HTTP/1.1 405") and b"Allow: GET, HEAD" in posted
        body = await exchange(port, b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
        assert body.startswith(b"HTTP/1.1 413")
        assert (await exchange(port, b"nonsense\r\n\r\n")).startswith(b"HTTP/1.1 400")
        nursery.cancel_scope.cancel()


async def test_an_oversized_head_gets_431_and_the_server_goes_on() -> None:
    async with trio.open_nursery() as nursery:
        port, _ = await start(nursery)
        big = b"GET /metrics HTTP/1.1\r\nX: " + b"a" * (http_server.MAX_HEAD + 10) + b"\r\n\r\n"
        assert (await exchange(port, big)).startswith(b"HTTP/1.1 431")
        ok = await exchange(port, b"GET /metrics HTTP/1.1\r\n\r\n")
        assert ok.startswith(b"HTTP/1.1 200")
        nursery.cancel_scope.cancel()


async def test_a_slow_client_is_closed_at_the_deadline(monkeypatch: object) -> None:
    import pytest

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    monkeypatch.setattr(http_server, "DEADLINE", 0.2)
    async with trio.open_nursery() as nursery:
        port, _ = await start(nursery)
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"GET /metrics HTTP/1.1\r\n")  # and never the rest
        with trio.fail_after(3):
            assert await stream.receive_some(100) == b""  # closed by the server
        await stream.aclose()
        nursery.cancel_scope.cancel()


async def test_one_connection_too_many_gets_503() -> None:
    async with trio.open_nursery() as nursery:
        port, _ = await start(nursery, max_connections=2)
        idle = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(2)]
        # under load the server may not have taken both yet: ask until it has (2 s at most)
        with trio.move_on_after(2):
            while not (await exchange(port, b"GET /metrics HTTP/1.1\r\n\r\n")).startswith(
                b"HTTP/1.1 503"
            ):
                await trio.sleep(0.05)
        refused = await exchange(port, b"GET /metrics HTTP/1.1\r\n\r\n")
        assert refused.startswith(b"HTTP/1.1 503")
        for s in idle:
            await s.aclose()
        await trio.sleep(0.05)
        assert (await exchange(port, b"GET /metrics HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 200")
        nursery.cancel_scope.cancel()
