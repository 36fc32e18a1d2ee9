"""An echo server for censor tests: TCP and UDP on one port, every connection logged.

    echo.py ADDR PORT

Echoes every TCP connection's bytes back (one thread each) and every UDP datagram to its
sender. Prints "listening" once both listen, then one line per TCP connection as it ends:
"tcp CLIENT BYTES closed" or "tcp CLIENT BYTES reset" (a RST arrived).
"""

import socket
import sys
import threading


def serve_tcp(conn: socket.socket, peer: str) -> None:
    n, end = 0, "closed"
    with conn:
        try:
            while chunk := conn.recv(65536):
                n += len(chunk)
                conn.sendall(chunk)
        except ConnectionResetError:
            end = "reset"
    print(f"tcp {peer} {n} {end}", flush=True)


def serve_udp(sock: socket.socket) -> None:
    while True:
        data, addr = sock.recvfrom(65536)
        sock.sendto(data, addr)


def main() -> int:
    addr, port = sys.argv[1], int(sys.argv[2])
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((addr, port))
    tcp.listen(64)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((addr, port))
    threading.Thread(target=serve_udp, args=(udp,), daemon=True).start()
    print("listening", flush=True)
    while True:
        conn, peer = tcp.accept()
        name = f"{peer[0]}:{peer[1]}"
        threading.Thread(target=serve_tcp, args=(conn, name), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
