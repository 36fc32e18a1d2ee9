"""Capture UDP datagrams on one interface (a raw AF_PACKET socket) as JSON lines.

    capture.py IFACE|any OUT.jsonl

Each line: {"src", "dst", "sport", "dport", "length" (UDP's length field), "tos" (the
IPv4 TOS byte, whose low two bits are the ECN field), "payload" (hex)}
for IPv4/UDP frames, until SIGTERM. A lab tool: it runs in the namespace of the interface.
"""

import json
import signal
import socket
import struct
import sys

ETH_P_ALL = 0x0003


def main() -> int:
    iface, out = sys.argv[1], sys.argv[2]
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    if iface != "any":  # unbound: every interface of the namespace
        sock.bind((iface, 0))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with open(out, "w", buffering=1) as f:
        print("capturing", flush=True)
        while True:
            frame, addr = sock.recvfrom(65536)
            if addr[2] == socket.PACKET_OUTGOING:  # a forwarded frame: seen coming in
                continue
            if len(frame) < 14 + 20 + 8 or frame[12:14] != b"\x08\x00":
                continue
            ip = frame[14:]
            ihl = (ip[0] & 0x0F) * 4
            if ip[9] != 17:  # UDP
                continue
            sport, dport, length = struct.unpack_from("!HHH", ip, ihl)
            payload = ip[ihl + 8 : ihl + length]
            f.write(
                json.dumps(
                    {
                        "src": socket.inet_ntoa(ip[12:16]),
                        "dst": socket.inet_ntoa(ip[16:20]),
                        "sport": sport,
                        "dport": dport,
                        "length": length,
                        "tos": ip[1],
                        "payload": payload.hex(),
                    }
                )
                + "\n"
            )


if __name__ == "__main__":
    sys.exit(main())
