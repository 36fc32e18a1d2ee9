"""The Prometheus endpoint (`[metrics] listen`): GET /metrics renders the node's registry.

Served by http_server.py (bounded head, a deadline, a connection limit). /metrics
answers GET and HEAD; any other method on it is 405, any other path 404. Rendering
reads plain counters and attributes on the event loop, which is cheap (the families
are bounded, metrics.py); nothing here touches the packet path.
"""

from collections.abc import Callable
from typing import Any

import trio

from tidewire.node import http_server
from tidewire.node.http_server import Request, Response

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def handler(render: Callable[[], str]) -> http_server.Handler:
    async def handle(request: Request) -> Response:
        if request.path != "/metrics":
            return http_server.text(404, "not found: the metrics are at /metrics")
        if request.method not in ("GET", "HEAD"):
            return Response(405, b"GET only\n", headers={"Allow": "GET, HEAD"})
        return Response(200, render().encode(), content_type=CONTENT_TYPE)

    return handle


async def serve(
    host: str,
    port: int,
    render: Callable[[], str],
    *,
    task_status: Any = trio.TASK_STATUS_IGNORED,
) -> None:
    await http_server.serve(host, port, handler(render), task_status=task_status)
