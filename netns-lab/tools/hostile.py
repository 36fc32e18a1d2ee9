"""Hostile traffic for the lab, at a UDP port:

    hostile.py flood HOST PORT PUBKEY RATE SECONDS [native]
        handshake initiations with a valid mac1 for PUBKEY (anyone who knows a public
        key can make one) and random contents, at RATE a second, from 16 source ports
    hostile.py flood-mac2 HOST PORT PUBKEY RATE SECONDS [SOURCE]
        the same from one socket (bound to SOURCE if given) that first gets itself a
        cookie reply and decrypts it, as any client can, then puts a valid mac2 on every
        initiation: a pool of 4096 such messages sent in turn, at RATE a second (0: as
        fast as one process can); prints the datagrams sent, then the rate reached
    hostile.py garbage HOST PORT COUNT
        random datagrams, truncated and oversized ones, and well-typed messages with
        random bodies

Prints the number of datagrams sent.
"""

import base64
import collections
import contextlib
import os
import random
import socket
import struct
import sys
import time

from tidewire.protocol.link.cookie import CookieGenerator
from tidewire.protocol.link.crypto import mac
from tidewire.protocol.link.messages import parse_cookie_reply
from tidewire.protocol.link.profile import NATIVE, WIREGUARD

POOL = 4096


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


def _initiation() -> bytearray:
    return bytearray(struct.pack("<II", 1, random.getrandbits(32)) + os.urandom(140))


def get_cookie(sock: socket.socket, dest: tuple[str, int], gen: CookieGenerator) -> bool:
    """Push the node under load with mac1-only initiations until one is answered with a
    cookie reply; the reply is bound to the mac1 it answers, so try each one sent lately.
    False if none came in 10 s: a node that drops a source's excess handshakes in the
    kernel never comes under load from one address, so the flood goes on with mac1 only."""
    deadline = time.monotonic() + 10
    sock.setblocking(False)
    sent_mac1s: collections.deque[bytes | None] = collections.deque(maxlen=4000)
    while time.monotonic() < deadline:
        # a steady 2-4k a second: spread out, so the node's reader sheds none of them and
        # the node sees its load
        for _ in range(2):
            msg = _initiation()
            gen.add_macs(msg, now=0.0)
            sent_mac1s.append(gen.last_mac1)
            with contextlib.suppress(OSError):
                sock.sendto(bytes(msg), dest)
        time.sleep(0.0005)
        try:
            reply = parse_cookie_reply(sock.recv(2048))
        except Exception:  # nothing yet, or not a cookie reply
            continue
        for mac1 in reversed(sent_mac1s):
            gen.last_mac1 = mac1
            with contextlib.suppress(Exception):
                gen.consume_reply(reply, now=0.0)
                return True
    return False


def flood_mac2(
    host: str, port: int, pubkey: str, rate: int, seconds: float, source: str | None
) -> tuple[int, float]:
    gen = CookieGenerator(WIREGUARD, base64.b64decode(pubkey))
    sock = _sock(host)
    if source:
        sock.bind((source, 0))
    dest = (host, port)
    got = get_cookie(sock, dest, gen)
    print(
        "flooding", "with mac2" if got else "with mac1 only (no cookie reply in 10 s)", flush=True
    )
    pool: list[bytes] = []
    for _ in range(POOL):
        msg = _initiation()
        gen.add_macs(msg, now=0.0)
        pool.append(bytes(msg))
    sock.setblocking(False)
    send = sock.sendto
    sent, start = 0, time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        if rate and sent > rate * elapsed:
            time.sleep(0.0005)
            continue
        for datagram in pool[sent % POOL : sent % POOL + 64]:
            try:  # noqa: SIM105 (a context manager per datagram would slow the flood)
                send(datagram, dest)
            except OSError:  # the send buffer is full: it still took our time
                pass
        sent += 64
    return sent, sent / (time.monotonic() - start)


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
    elif cmd == "flood-mac2":
        src = sys.argv[7] if len(sys.argv) > 7 else None
        n, reached = flood_mac2(host, port, sys.argv[4], int(sys.argv[5]), float(sys.argv[6]), src)
        print(f"{reached:.0f} per second", flush=True)
    else:
        n = garbage(host, port, int(sys.argv[4]))
    print(n, flush=True)
