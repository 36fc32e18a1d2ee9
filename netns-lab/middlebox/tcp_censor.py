"""The lab censor's TCP classifier process: an on-path tap in the censor's namespace.

    python -m middlebox.tcp_censor TABLE RESIDUAL_SECONDS     # started by censor.Censor

It watches every IPv4 TCP frame the namespace receives (a raw AF_PACKET socket with a
classic BPF filter for TCP), remembers connections from their SYN, and judges the first
data packet the client sends on each with `fully_encrypted.verdict`. A flagged connection
gets a RST injected towards both ends (to the client at the sequence it expects from the
server, to the server just past the flagged data), and so does each data segment either
end still sends on it (a reply that overtook the first RST cannot save the connection).
The server's address and port go into the nftables set `residual` of TABLE with a
timeout, which the censor's forward chain drops in both directions: residual blocking,
180 s by default, as Wu et al. measured. Like the real censor, it taps the path rather
than holding packets (this kernel's nftables has no `queue`), so the flagged packet
itself reaches the server.

Each judgement is one JSON line on standard output: {"client", "server", "verdict"
("block" or "exempt"), "rule", "length"}; "ready" comes first.
"""

import contextlib
import ctypes
import json
import socket
import struct
import subprocess
import sys
from collections import OrderedDict

from middlebox.fully_encrypted import ACK, RST, SYN, Segment, parse_frame, reset, verdict

ETH_P_IP, SO_ATTACH_FILTER = 0x0800, 26
TRACKED = 4096  # connections awaiting their first data packet; the oldest is forgotten
# ldh [12]; jeq #0x800 else drop; ldb [23]; jeq #6 else drop; ret #65535; drop: ret #0
TCP_ONLY = [(0x28, 0, 0, 12), (0x15, 0, 3, 0x800), (0x30, 0, 0, 23), (0x15, 0, 1, 6),
            (0x06, 0, 0, 0xFFFF), (0x06, 0, 0, 0)]  # fmt: skip

Key = tuple[str, int, str, int]


def attach_filter(sock: socket.socket) -> None:
    program = b"".join(struct.pack("HBBI", *insn) for insn in TCP_ONLY)
    buf = ctypes.create_string_buffer(program, len(program))
    sock.setsockopt(
        socket.SOL_SOCKET, SO_ATTACH_FILTER, struct.pack("HP", len(TCP_ONLY), ctypes.addressof(buf))
    )


def remember(table: OrderedDict[Key, None], key: Key) -> None:
    table[key] = None
    while len(table) > TRACKED:
        table.popitem(last=False)


class Tap:
    def __init__(self, table: str, residual: float) -> None:
        self.table, self.residual = table, residual
        self.waiting: OrderedDict[Key, None] = OrderedDict()
        self.flagged: OrderedDict[Key, None] = OrderedDict()  # both directions' keys
        self.sniff = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
        attach_filter(self.sniff)
        self.inject = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)

    def run(self) -> None:
        print("ready", flush=True)
        while True:
            frame, addr = self.sniff.recvfrom(65536)
            if addr[2] == socket.PACKET_OUTGOING:  # forwarded on, or injected here
                continue
            segment = parse_frame(frame)
            if segment is not None:
                self.segment(segment)

    def segment(self, s: Segment) -> None:
        key = (s.src, s.sport, s.dst, s.dport)
        if key in self.flagged and s.payload and not s.flags & RST:
            # what either end still sends on a flagged connection: reset its receiver
            # just past it, so a reply that overtook the first RST cannot save it
            after = reset(s.src, s.dst, s.sport, s.dport, seq=s.seq + len(s.payload))
            with contextlib.suppress(OSError):
                self.inject.sendto(after, (s.dst, 0))
        elif s.flags & SYN and not s.flags & ACK:
            remember(self.waiting, key)
        elif s.flags & RST:
            self.waiting.pop(key, None)
        elif s.payload and key in self.waiting:
            del self.waiting[key]
            judged = verdict(s.payload)
            line = {
                "client": f"{s.src}:{s.sport}",
                "server": f"{s.dst}:{s.dport}",
                "verdict": "block" if judged.block else "exempt",
                "rule": judged.rule,
                "length": len(s.payload),
            }
            if judged.block:
                self.block(s)
            print(json.dumps(line), flush=True)

    def block(self, s: Segment) -> None:
        remember(self.flagged, (s.src, s.sport, s.dst, s.dport))
        remember(self.flagged, (s.dst, s.dport, s.src, s.sport))
        to_client = reset(s.dst, s.src, s.dport, s.sport, seq=s.ack)
        to_server = reset(s.src, s.dst, s.sport, s.dport, seq=s.seq + len(s.payload))
        for packet, dst in ((to_client, s.src), (to_server, s.dst)):
            with contextlib.suppress(OSError):
                self.inject.sendto(packet, (dst, 0))
        element = f"{{ {s.dst} . {s.dport} timeout {round(self.residual * 1000)}ms }}"
        subprocess.run(
            ["nft", "add", "element", "inet", self.table, "residual", element], check=False
        )


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    Tap(argv[0], float(argv[1])).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
