"""Helpers shared by the lab scenarios: transfers with checksums, pings, status polling."""

import hashlib
import os
import sys
from pathlib import Path

from lab import Host, Lab, Node

TOOLS = Path(__file__).resolve().parents[1] / "tools"
PY = sys.executable


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
