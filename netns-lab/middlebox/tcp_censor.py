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

from middlebox.fully_encrypted import Action, Classifier, parse_frame

ETH_P_IP, SO_ATTACH_FILTER = 0x0800, 26
# ldh [12]; jeq #0x800 else drop; ldb [23]; jeq #6 else drop; ret #65535; drop: ret #0
TCP_ONLY = [(0x28, 0, 0, 12), (0x15, 0, 3, 0x800), (0x30, 0, 0, 23), (0x15, 0, 1, 6),
            (0x06, 0, 0, 0xFFFF), (0x06, 0, 0, 0)]  # fmt: skip


def attach_filter(sock: socket.socket) -> None:
    program = b"".join(struct.pack("HBBI", *insn) for insn in TCP_ONLY)
    buf = ctypes.create_string_buffer(program, len(program))
    sock.setsockopt(
        socket.SOL_SOCKET, SO_ATTACH_FILTER, struct.pack("HP", len(TCP_ONLY), ctypes.addressof(buf))
    )


class Tap:
    def __init__(self, table: str, residual: float) -> None:
        self.table, self.residual = table, residual
        self.classifier = Classifier()
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
                self.act(self.classifier.segment(segment))

    def act(self, action: Action) -> None:
        for packet, dst in action.resets:
            with contextlib.suppress(OSError):
                self.inject.sendto(packet, (dst, 0))
        if action.residual is not None:
            ip, port = action.residual
            element = f"{{ {ip} . {port} timeout {round(self.residual * 1000)}ms }}"
            subprocess.run(
                ["nft", "add", "element", "inet", self.table, "residual", element], check=False
            )
        if action.judgement is not None:
            print(json.dumps(action.judgement), flush=True)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    Tap(argv[0], float(argv[1])).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
