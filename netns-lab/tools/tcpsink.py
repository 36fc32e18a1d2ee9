"""TCP helpers for lab tests.

tcpsink.py serve ADDR PORT       print SHA-256 and size of what one connection sent
tcpsink.py send ADDR PORT FILE [BITS_PER_S]   send a file (paced, if a rate is given)
tcpsink.py listen ADDR PORT      answer every connection with one line
tcpsink.py check ADDR PORT       exit 0 if ADDR PORT answers within 3 s
"""

import hashlib
import socket
import sys
import time


def serve(addr: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        s.listen(1)
        print("listening", flush=True)
        conn, _ = s.accept()
        h, n = hashlib.sha256(), 0
        with conn:
            while chunk := conn.recv(1 << 16):
                h.update(chunk)
                n += len(chunk)
        print(f"{h.hexdigest()} {n}", flush=True)


def send(addr: str, port: int, path: str, rate: float = 0) -> None:
    with socket.create_connection((addr, port), timeout=60) as s, open(path, "rb") as f:
        if not rate:
            s.sendfile(f)
            return
        start, sent = time.monotonic(), 0
        while chunk := f.read(1 << 16):
            s.sendall(chunk)
            sent += len(chunk)
            ahead = sent * 8 / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)


def listen(addr: str, port: int) -> None:
    """Accept connections forever, answer each with one line, close it."""
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        s.listen(16)
        print("listening", flush=True)
        while True:
            conn, _ = s.accept()
            with conn:
                conn.sendall(b"hello from the internet\n")


def check(addr: str, port: int) -> int:
    """Exit 0 if a connection to ADDR PORT is answered within 3 s."""
    try:
        with socket.create_connection((addr, port), timeout=3) as s:
            return 0 if s.recv(64).startswith(b"hello") else 1
    except OSError:
        return 1


if __name__ == "__main__":
    cmd, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if cmd == "serve":
        serve(addr, port)
    elif cmd == "listen":
        listen(addr, port)
    elif cmd == "check":
        sys.exit(check(addr, port))
    else:
        send(addr, port, sys.argv[4], float(sys.argv[5]) if len(sys.argv) > 5 else 0)
