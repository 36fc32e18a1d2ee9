"""An active prober: send datagrams to HOST PORT from a fresh socket and count the replies.

    probe.py HOST PORT SECONDS HEX [HEX ...]

Sends each datagram (given as hex), listens SECONDS for anything back, prints the number
of replies. A lab tool: a censor probing a suspected tunnel server.
"""

import socket
import sys
import time


def main() -> int:
    host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for text in sys.argv[4:]:
        sock.sendto(bytes.fromhex(text), (host, port))
    replies = 0
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            sock.recv(65536)
        except TimeoutError:
            break
        replies += 1
    print(replies)
    return 0


if __name__ == "__main__":
    sys.exit(main())
