"""The dashboard's server over loopback, the daemon replaced by a function: the page and
its files come from the package; /api needs the Bearer token (missing or wrong: 401 and
no data); the metrics text arrives parsed."""

import json
from typing import Any

import trio

from tidewire.cli.dashboard_server import Dashboard, new_token, parse_metrics, serve
from tidewire.node.metrics import Registry

STATUS = {"interface": "tw0", "public_key": "PUB", "peers": []}


def registry() -> Registry:
    reg = Registry()
    reg.value("process_resident_memory_bytes", "Resident memory.", lambda: 1234, kind="gauge")
    reg.labelled(
        "tidewire_exit_refused_total",
        "Refused.",
        label="reason",
        read=lambda: [("smtp", 3), ('we"ird\\', 1)],
    )
    return reg


def fake_daemon(msg: dict[str, Any]) -> dict[str, Any]:
    if msg["cmd"] == "metrics":
        return {"ok": True, "metrics": registry().render()}
    return {"ok": True, msg["cmd"]: STATUS if msg["cmd"] == "status" else {"sessions": []}}


async def get(port: int, path: str, auth: str | None = None) -> tuple[int, dict[str, str], bytes]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        extra = f"Authorization: {auth}\r\n" if auth is not None else ""
        await stream.send_all(f"GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode())
        out = b""
        while chunk := await stream.receive_some(65536):
            out += chunk
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


async def test_api_needs_the_token_and_gives_nothing_without_it() -> None:
    token = new_token()
    assert len(token) >= 43  # 32 random bytes, urlsafe base64
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve, "127.0.0.1", 0, Dashboard(token=token, call=fake_daemon))
        for auth in (None, "Bearer wrong", f"Basic {token}", f"Bearer {token}x"):
            code, _, body = await get(port, "/api/status", auth)
            assert (code, body) == (401, b""), auth
        code, headers, body = await get(port, "/api/status", f"Bearer {token}")
        assert code == 200 and headers["Content-Type"] == "application/json"
        assert json.loads(body) == STATUS
        code, _, body = await get(port, "/api/metrics", f"Bearer {token}")
        assert json.loads(body)["tidewire_exit_refused_total"]["smtp"] == 3
        assert (await get(port, "/api/down", f"Bearer {token}"))[0] == 404
        nursery.cancel_scope.cancel()


async def test_the_page_and_its_files_come_from_the_package_with_no_cdn() -> None:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve, "127.0.0.1", 0, Dashboard(token="t", call=fake_daemon))
        code, headers, page = await get(port, "/")
        assert code == 200 and b'<script src="/app.js"' in page
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        for path in ("/app.js", "/style.css"):
            code, _, body = await get(port, path)
            assert code == 200 and body
            assert b"http://" not in body and b"https://" not in body  # nothing from elsewhere
        assert b"https://" not in page and b"http://" not in page
        assert (await get(port, "/../pyproject.toml"))[0] == 404
        nursery.cancel_scope.cancel()


def test_metrics_text_parses_back_to_the_registry_values() -> None:
    parsed = parse_metrics(registry().render())
    assert parsed["process_resident_memory_bytes"] == {"": 1234}
    assert parsed["tidewire_exit_refused_total"] == {"smtp": 3, 'we"ird\\': 1}
