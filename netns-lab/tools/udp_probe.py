"""A tiny UDP tool for checking the lab's NATs (netns-lab/nat.py).

udp_probe.py listen PORT SECONDS          print "HOST:PORT" of every datagram's source
udp_probe.py send LOCAL_PORT HOST:PORT... one datagram to each, from one socket
"""

import socket
import sys
import time


def main(argv: list[str]) -> int:
    if argv[0] == "listen":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", int(argv[1])))
        deadline = time.monotonic() + float(argv[2])
        while (left := deadline - time.monotonic()) > 0:
            s.settimeout(left)
            try:
                _, (host, port) = s.recvfrom(2048)
            except TimeoutError:
                break
            print(f"{host}:{port}", flush=True)
        return 0
    if argv[0] == "send":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", int(argv[1])))
        for dest in argv[2:]:
            host, _, port = dest.rpartition(":")
            s.sendto(b"nat probe", (host, int(port)))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
