"""Capture every frame on every interface of a namespace, raw, for searching afterwards.

    rawcap.py OUT.bin

Each record: the interface name (16 bytes, NUL-padded), the frame's length (4 bytes, big
endian), then the frame as the packet socket gave it (Ethernet frames on veths, bare IP
packets on a TUN). Until SIGTERM. `read(path)` gives the records back. A lab tool.
"""

import signal
import socket
import struct
import sys
from collections.abc import Iterator

ETH_P_ALL = 0x0003
_RECORD = struct.Struct("!16sI")


def read(path: str) -> Iterator[tuple[str, bytes]]:
    with open(path, "rb") as f:
        data = f.read()
    at = 0
    while at + _RECORD.size <= len(data):
        name, n = _RECORD.unpack_from(data, at)
        at += _RECORD.size
        yield name.rstrip(b"\0").decode(), data[at : at + n]
        at += n


def main() -> int:
    out = sys.argv[1]
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with open(out, "wb") as f:
        print("capturing", flush=True)
        while True:
            frame, addr = sock.recvfrom(65536)
            f.write(_RECORD.pack(addr[0].encode()[:16], len(frame)) + frame)
            f.flush()


if __name__ == "__main__":
    sys.exit(main())
