"""Helpers shared by the lab scenarios: transfers with checksums, pings, status polling."""

import base64
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from lab import LAB_DATAPLANE, Host, Lab, Node

TOOLS = Path(__file__).resolve().parents[1] / "tools"
PY = sys.executable


def shaping_queues() -> str:
    """What a shaping node's status says its [share] queues are: the native threads'
    own ("threads") when this checkout's module is built and they run, the native Share
    on the Python plane, else the Python one."""
    from importlib.util import find_spec

    if find_spec("tidewire._dataplane") is None:
        return "python"
    return "native" if LAB_DATAPLANE == "python" else "threads"


def random_file(lab: Lab, size: int) -> tuple[Path, str]:
    path = lab.tmp / f"payload-{size}"
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(left, 1 << 20))
            h.update(chunk)
            f.write(chunk)
            left -= len(chunk)
    return path, h.hexdigest()


def transfer(
    lab: Lab,
    src: Host,
    dst: Host,
    dst_addr: str,
    size: int,
    *,
    port: int = 5001,
    timeout: float = 120,
) -> None:
    """Send `size` random bytes over TCP from src to dst_addr and check the SHA-256."""
    path, digest = random_file(lab, size)
    sink = dst.spawn(
        [PY, str(TOOLS / "tcpsink.py"), "serve", dst_addr, str(port)], name=f"sink-{dst.name}"
    )
    lab.wait_for(lambda: "listening" in sink.log(), timeout=10, what="the TCP sink")
    src.run(
        [PY, str(TOOLS / "tcpsink.py"), "send", dst_addr, str(port), str(path)], timeout=timeout
    )
    lab.wait_for(lambda: len(sink.log().split()) >= 3, timeout=30, what="the transfer's checksum")
    got_digest, got_size = sink.log().split()[1:3]
    assert (got_digest, int(got_size)) == (digest, size), "transfer corrupted or short"


def ping(host: Host, addr: str, *, count: int = 3, check: bool = True) -> bool:
    result = host.run(
        ["ping", "-c", str(count), "-i", "0.2", "-W", "2", addr], check=False, timeout=30
    )
    if check:
        assert result.returncode == 0, (
            f"{host.name} cannot ping {addr}:\n{result.stdout}{result.stderr}"
        )
    return result.returncode == 0


def unreachable(host: Host, addr: str) -> bool:
    return (
        host.run(
            ["ping", "-c", "2", "-i", "0.2", "-W", "1", addr], check=False, timeout=30
        ).returncode
        != 0
    )


def handshaken(node: Node) -> bool:
    return all(p["latest_handshake"] for p in node.status()["peers"])


def discover(node: Node) -> dict[str, Any]:
    """`tidewire discover --json` of a node."""
    data: dict[str, Any] = json.loads(node.cli("discover", "--json").stdout)
    return data


def check_provider_record(
    p: dict[str, Any], *, private_key: str, public_key: str, source: str
) -> bytes:
    """A discovered record is the lab provider's (exit, 40 Mbit/s for 10 clients,
    region "lab", reached at 203.0.113.1:51820); its record key."""
    from tidewire.protocol.accounting.receipts import signing_key_from_static

    record_key = bytes(signing_key_from_static(base64.b64decode(private_key)).verify_key)
    assert p["public_key"] == public_key and p["record_key"] == record_key.hex()
    assert p["source"] == source and p["region"] == "lab" and "provider" in p["roles"]
    assert "udp://203.0.113.1:51820" in p["endpoints"], p
    assert p["capacity"] == 40_000_000 and p["clients"] == 10
    return record_key


def wait_for_providers(
    lab: Lab, node: Node, *, timeout: float, what: str, show: tuple[Node, ...] = ()
) -> tuple[list[dict[str, Any]], float]:
    """Poll a node's `discover` until it knows providers: them, and how long it took.
    On a timeout, print what the node and `show` know."""
    t0 = time.monotonic()
    try:
        found = lab.wait_for(lambda: discover(node)["providers"], timeout=timeout, what=what)
    except Exception:
        for n in (node, *show):
            print(f"{n.name}:", json.dumps(discover(n)))
        raise
    return found, time.monotonic() - t0


def overlay_route(node: Node, dest: str) -> dict[str, Any] | None:
    """The node's selected overlay route to a key (`status --json` routes), if any."""
    for r in node.status()["routes"]:
        if r["destination"] == dest and r["next_hop"] is not None:
            return r  # type: ignore[no-any-return]
    return None


def stop(lab: Lab, node: Node) -> None:
    """`tidewire down`, and wait until the daemon is gone."""
    node.cli("down")
    lab.wait_for(lambda: not node.proc.alive(), timeout=15, what=f"{node.name} to stop")
