"""The dashboard's web server: the page from the package, and JSON proxied from the daemon.

A separate process (`tidewire dashboard`), so the node's memory and packet path are
untouched: each /api call is one request on the daemon's control socket, made in a
worker thread. Routes:

- GET / , /app.js, /style.css: the static files in cli/dashboard/ (no CDN; works offline);
- GET /api/status, /api/usage: the daemon's `status` and `usage` replies;
- GET /api/metrics: the daemon's registry, parsed to {family: {label value: value}}.

Every /api call needs `Authorization: Bearer TOKEN`; a missing or wrong token is 401
with no data. The token is compared in constant time. The page learns it from the URL
fragment, which a browser never sends to a server.
"""

import json
import secrets
from collections.abc import Callable
from importlib.resources import files
from typing import Any

import trio

from tidewire.node import http_server
from tidewire.node.http_server import Request, Response

STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
# the page may load only its own files and talk only to this server
SECURITY = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}

Call = Callable[[dict[str, Any]], dict[str, Any]]  # one control request, blocking


def new_token() -> str:
    return secrets.token_urlsafe(32)


def parse_metrics(text: str) -> dict[str, dict[str, float]]:
    """Prometheus text as the registry writes it (one label at most) to nested dicts."""
    out: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        name, brace, rest = series.partition("{")
        label = ""
        if brace:
            raw = rest[rest.index('"') + 1 : rest.rindex('"')]
            label = raw.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
        try:
            out.setdefault(name, {})[label] = float(value)
        except ValueError:
            continue
    return out


class Dashboard:
    def __init__(self, *, token: str, call: Call) -> None:
        self.token = token
        self.call = call
        self.assets = files("tidewire.cli") / "dashboard"

    def authorized(self, request: Request) -> bool:
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        return scheme.lower() == "bearer" and secrets.compare_digest(
            value.strip().encode(), self.token.encode()
        )

    async def __call__(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return Response(405, b"GET only\n", headers={"Allow": "GET, HEAD"})
        if request.path in STATIC:
            name, kind = STATIC[request.path]
            body = (self.assets / name).read_bytes()
            return Response(200, body, content_type=kind, headers=dict(SECURITY))
        if not request.path.startswith("/api/"):
            return http_server.text(404)
        if not self.authorized(request):
            return Response(401, b"", headers={"WWW-Authenticate": 'Bearer realm="tidewire"'})
        cmd = request.path.removeprefix("/api/")
        if cmd not in ("status", "usage", "metrics"):
            return http_server.text(404)
        try:
            reply = await trio.to_thread.run_sync(self.call, {"cmd": cmd})
        except Exception as exc:  # the daemon is gone or refused: say so to the page
            data: Any = {"error": str(exc)}
            return Response(502, json.dumps(data).encode(), content_type="application/json")
        data = parse_metrics(reply["metrics"]) if cmd == "metrics" else reply[cmd]
        return Response(200, json.dumps(data).encode(), content_type="application/json")


async def serve(
    host: str, port: int, dashboard: Dashboard, *, task_status: Any = trio.TASK_STATUS_IGNORED
) -> None:
    await http_server.serve(host, port, dashboard, task_status=task_status)
