"""The control socket: mode 0600, one JSON reply per line, bad requests answered with an
error while the server carries on."""

import json
import os
import stat
from pathlib import Path
from typing import Any

import trio

from tidewire.node import control


async def handler(req: dict[str, Any]) -> dict[str, Any]:
    if req["cmd"] == "echo":
        return {"echo": req.get("x")}
    if req["cmd"] == "boom":
        raise RuntimeError("a bug")
    raise control.RequestError(f"unknown command {req['cmd']!r}")


async def exchange(path: Path, lines: list[bytes]) -> list[dict[str, Any]]:
    stream = await trio.open_unix_socket(str(path))
    async with stream:
        replies = []
        for line in lines:
            await stream.send_all(line)
            buf = b""
            while not buf.endswith(b"\n"):
                buf += await stream.receive_some(65536)
            replies.append(json.loads(buf))
        return replies


async def test_requests_and_bad_requests(tmp_path: Path) -> None:
    path = tmp_path / "run" / "tw0.sock"
    async with trio.open_nursery() as nursery:
        await nursery.start(control.serve, path, handler)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        replies = await exchange(
            path,
            [
                b'{"cmd": "echo", "x": 5}\n',
                b"this is not json\n",
                b'["cmd"]\n',
                b'{"cmd": "nope"}\n',
                b'{"cmd": "boom"}\n',
                b'{"cmd": "echo", "x": 6}\n',
            ],
        )
        assert replies[0] == {"ok": True, "echo": 5}
        assert replies[1] == {"ok": False, "error": "request is not a JSON object on one line"}
        assert replies[2]["ok"] is False and "cmd" in replies[2]["error"]
        assert replies[3] == {"ok": False, "error": "unknown command 'nope'"}
        assert replies[4] == {"ok": False, "error": "internal error; see the daemon log"}
        assert replies[5] == {"ok": True, "echo": 6}
        nursery.cancel_scope.cancel()
    assert not path.exists()


async def test_oversized_request_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tw1.sock"
    async with trio.open_nursery() as nursery:
        await nursery.start(control.serve, path, handler)
        stream = await trio.open_unix_socket(str(path))
        async with stream:
            await stream.send_all(b"x" * (control.MAX_LINE + 10))
            buf = b""
            while not buf.endswith(b"\n"):
                buf += await stream.receive_some(65536)
        assert "longer than" in json.loads(buf)["error"]
        assert (await exchange(path, [b'{"cmd": "echo", "x": 1}\n']))[0]["ok"]
        nursery.cancel_scope.cancel()


async def test_a_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "tw2.sock"
    path.write_text("left behind by a killed daemon")
    async with trio.open_nursery() as nursery:
        await nursery.start(control.serve, path, handler)
        assert (await exchange(path, [b'{"cmd": "echo", "x": 2}\n']))[0]["echo"] == 2
        nursery.cancel_scope.cancel()
