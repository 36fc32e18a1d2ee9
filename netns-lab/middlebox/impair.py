"""The lab's impairment box: a user-space bridge between two interfaces of one namespace
that delays, jitters, loses and rate-limits frames, each direction on its own (this
kernel has no netem). `topologies.impaired_link` puts one between two hosts.

    python -m middlebox.impair IF_A IF_B CONTROL.sock     # in the middle namespace
    python -m middlebox.impair offloads IFACE             # on each end: no TSO/GSO, no
                                                          # checksum offload on the veth
    box = ImpairClient(path); box.set("both", delay=0.02, loss=0.01); box.stats()

Frames come in on raw AF_PACKET sockets (the middle interfaces have no addresses, so the
kernel forwards nothing itself) and leave on the other interface when `link_model` says
they are due. The control socket takes one JSON object per line and answers one:
{"op": "set", "dir": "ab"|"ba"|"both", "delay": s, "jitter": s, "loss": p, "rate": bit/s,
"limit": frames} (a field left out is reset to its default), and {"op": "stats"}.

The ends must not hand the box frames it cannot forward: a veth's checksum offload leaves
TCP and UDP checksums unfinished and its TSO/GSO passes 64 KB super-frames; `offloads`
turns both off (an ethtool ioctl: ETHTOOL_STXCSUM, and `gso_max_segs 1` for UDP GSO).
"""

import contextlib
import ctypes
import fcntl
import json
import random
import select
import socket
import struct
import subprocess
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from middlebox.link_model import Impairment, LinkModel

ETH_P_ALL = 0x0003
SO_TIMESTAMPNS = 35  # asm-generic/socket.h: the kernel's receive time, CLOCK_REALTIME
SIOCETHTOOL, ETHTOOL_STXCSUM = 0x8946, 0x17  # linux/sockios.h, linux/ethtool.h
BATCH = 64  # frames read from one socket before looking at the clock again
DIRECTIONS = {"ab": ("ab",), "ba": ("ba",), "both": ("ab", "ba")}


def impairment_from(request: dict[str, Any]) -> Impairment:
    """The Impairment a control request names (ValueError for an unknown or bad field)."""
    names = {f.name for f in fields(Impairment)}
    unknown = set(request) - names - {"op", "dir"}
    if unknown:
        raise ValueError(f"unknown field {sorted(unknown)[0]!r}")
    values = {k: v for k, v in request.items() if k in names}
    for k, v in values.items():
        if not isinstance(v, int | float) or isinstance(v, bool) or not -1e9 < v < 1e9:
            raise ValueError(f"{k} must be a number")  # NaN and infinities fail the range
    limit = int(values.pop("limit", Impairment.limit))
    return Impairment(**{k: float(v) for k, v in values.items()}, limit=limit)


def control(links: dict[str, LinkModel], request: Any) -> dict[str, Any]:
    """The answer to one control request; ValueError, naming what is wrong, for a bad one."""
    if not isinstance(request, dict):
        raise ValueError("a request is a JSON object")
    if request.get("op") == "stats":
        return {d: asdict(link.stats) for d, link in links.items()}
    if request.get("op") == "set":
        directions = DIRECTIONS.get(request.get("dir", "both"))
        if directions is None:
            raise ValueError("dir is ab, ba or both")
        impairment = impairment_from(request)
        for d in directions:
            links[d].impairment = impairment
        return {"ok": True}
    raise ValueError("op is set or stats")


class Box:
    def __init__(self, if_a: str, if_b: str, control: str) -> None:
        self.socks = {}
        for name, iface in (("a", if_a), ("b", if_b)):
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            s.bind((iface, 0))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            s.setblocking(False)
            self.socks[name] = s
        self.links = {"ab": LinkModel(Impairment()), "ba": LinkModel(Impairment())}
        self.out = {"ab": self.socks["b"], "ba": self.socks["a"]}
        Path(control).unlink(missing_ok=True)
        self.control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.control.bind(control)
        self.control.listen(4)
        self.rng = random.Random()

    def run(self) -> None:
        print("ready", flush=True)
        readers = {self.socks["a"]: "ab", self.socks["b"]: "ba"}
        while True:
            deadlines = [d for link in self.links.values() if (d := link.deadline()) is not None]
            timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            ready, _, _ = select.select([*readers, self.control], [], [], timeout)
            for s in ready:
                if s is self.control:
                    self.serve_control()
                else:
                    self.read(s, readers[s])
            now = time.monotonic()
            for direction, link in self.links.items():
                for frame in link.due(now=now):
                    with contextlib.suppress(OSError):  # a frame the other side refuses
                        self.out[direction].send(frame)

    def read(self, sock: socket.socket, direction: str) -> None:
        """Each frame joins the link at the moment the kernel received it, not when this
        process got round to reading it: a box descheduled for a few milliseconds (a busy
        2-core machine) would otherwise leave its emulated wire idle that long, and TCP
        through a 20 Mbit/s setting measured 10-16 Mbit/s in about one run in four."""
        link = self.links[direction]
        wall, mono = time.time(), time.monotonic()
        for _ in range(BATCH):
            try:
                frame, ancillary, _flags, addr = sock.recvmsg(65536, 64)
            except BlockingIOError:
                return
            if addr[2] == socket.PACKET_OUTGOING:  # what this box itself sent
                continue
            link.arrive(frame, now=arrival(ancillary, wall, mono), rng=self.rng.random)

    def serve_control(self) -> None:
        conn, _ = self.control.accept()
        with conn:
            conn.settimeout(2)
            try:
                line = conn.makefile("rb").readline(4096)
                answer = control(self.links, json.loads(line))
            except (OSError, ValueError) as e:
                answer = {"error": str(e)}
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps(answer).encode() + b"\n")


def arrival(ancillary: list[tuple[int, int, bytes]], wall: float, mono: float) -> float:
    """The monotonic time a frame reached the socket, from its SO_TIMESTAMPNS stamp (taken
    on the wall clock) and a (wall, monotonic) pair read just now; `mono` without a stamp."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanoseconds = struct.unpack_from("qq", data)
            age = wall - (int(seconds) + int(nanoseconds) * 1e-9)
            return mono - min(1.0, max(0.0, age))
    return mono


class ImpairClient:
    """The test's side of the control socket."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def request(self, request: dict[str, Any]) -> dict[str, Any]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(str(self.path))
            s.sendall(json.dumps(request).encode() + b"\n")
            answer: dict[str, Any] = json.loads(s.makefile("rb").readline())
        if "error" in answer:
            raise ValueError(f"impair box: {answer['error']}")
        return answer

    def set(self, direction: str = "both", **impairment: float) -> None:
        self.request({"op": "set", "dir": direction, **impairment})

    def stats(self) -> dict[str, dict[str, int]]:
        return self.request({"op": "stats"})


def offloads_off(iface: str) -> None:
    """No checksum offload (which also ends TSO) and no GSO on this interface."""
    buf = ctypes.create_string_buffer(struct.pack("=II", ETHTOOL_STXCSUM, 0), 8)
    ifreq = struct.pack("16sP", iface.encode(), ctypes.addressof(buf))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s, SIOCETHTOOL, ifreq)
    subprocess.run(["ip", "link", "set", iface, "gso_max_segs", "1"], check=True)


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "offloads":
        offloads_off(argv[1])
        return 0
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    Box(*argv).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
