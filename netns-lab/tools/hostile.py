"""Hostile traffic for the lab, at a UDP port:

    hostile.py flood HOST PORT PUBKEY RATE SECONDS [native]
        handshake initiations with a valid mac1 for PUBKEY (anyone who knows a public
        key can make one) and random contents, at RATE a second, from 16 source ports
    hostile.py garbage HOST PORT COUNT
        random datagrams, truncated and oversized ones, and well-typed messages with
        random bodies

Prints the number of datagrams sent.
"""

import base64
import contextlib
import os
import random
import socket
import struct
import sys
import time

from tidewire.protocol.link.crypto import mac
from tidewire.protocol.link.profile import NATIVE, WIREGUARD


def _sock(host: str) -> socket.socket:
    return socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)


def flood(host: str, port: int, pubkey: str, rate: int, seconds: float, native: bool) -> int:
    key = (NATIVE if native else WIREGUARD).mac1_key(base64.b64decode(pubkey))
    socks = [_sock(host) for _ in range(16)]
    sent, start = 0, time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        if sent > rate * elapsed:
            time.sleep(0.001)
            continue
        body = struct.pack("<II", 1, random.getrandbits(32)) + os.urandom(108)
        msg = body + mac(key, body) + bytes(16)
        with contextlib.suppress(OSError):
            socks[sent % 16].sendto(msg, (host, port))
        sent += 1
    return sent


def garbage(host: str, port: int, count: int) -> int:
    s = _sock(host)
    rnd = random.Random(1234)
    for i in range(count):
        kind = i % 4
        if kind == 0:
            data = rnd.randbytes(rnd.randrange(0, 1500))
        elif kind == 1:
            t = rnd.choice([1, 2, 3, 4])
            size = rnd.choice([148, 92, 64, 32, 48, 1440])
            data = struct.pack("<I", t) + rnd.randbytes(size - 4)
        elif kind == 2:
            t = rnd.choice([1, 2, 3, 4])
            data = struct.pack("<I", t) + rnd.randbytes(rnd.randrange(0, 40))
        else:
            data = rnd.randbytes(rnd.randrange(1500, 9000))
        with contextlib.suppress(OSError):
            s.sendto(data, (host, port))
    return count


if __name__ == "__main__":
    cmd, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if cmd == "flood":
        n = flood(host, port, sys.argv[4], int(sys.argv[5]), float(sys.argv[6]), len(sys.argv) > 7)
    else:
        n = garbage(host, port, int(sys.argv[4]))
    print(n, flush=True)
