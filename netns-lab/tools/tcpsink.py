"""TCP transfer with a checksum, for lab tests: `tcpsink.py serve ADDR PORT` prints the SHA-256
and byte count of what one connection sent; `tcpsink.py send ADDR PORT FILE` sends a file."""

import hashlib
import socket
import sys


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


def send(addr: str, port: int, path: str) -> None:
    with socket.create_connection((addr, port), timeout=60) as s, open(path, "rb") as f:
        s.sendfile(f)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]))
    else:
        send(sys.argv[2], int(sys.argv[3]), sys.argv[4])
