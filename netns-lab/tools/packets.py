"""Packet tools for the exit-bypass scenarios, run inside a namespace.

    packets.py listen PORT        UDP on [::]:PORT (IPv4 too): "got SRC DST LEN" per datagram
    packets.py capture IFACE      every IP packet seen on IFACE: "SRC DST PROTO DPORT"
    packets.py inject IFACE HEX   write one IP packet (hex) out of IFACE, below routing

Each long-running command prints "ready" once it listens. `inject` on a TUN device
hands the packet to the program behind it, exactly as the kernel would send it.
"""

import socket
import sys

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment
from scapy.layers.l2 import Ether

ETH_P_ALL, ETH_P_IP, ETH_P_IPV6 = 0x0003, 0x0800, 0x86DD
IPV6_RECVPKTINFO, IPV6_PKTINFO, IP_PKTINFO = 49, 50, 8  # linux/in6.h, linux/in.h


def listen(port: int) -> None:
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
    s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
    s.bind(("::", port))
    print("ready", flush=True)
    while True:
        data, anc, _, addr = s.recvmsg(65535, 256)
        dst = "?"
        for level, kind, value in anc:
            if level == socket.IPPROTO_IPV6 and kind == IPV6_PKTINFO:
                dst = socket.inet_ntop(socket.AF_INET6, value[:16])
            elif level == socket.IPPROTO_IP and kind == IP_PKTINFO:
                dst = socket.inet_ntop(socket.AF_INET, value[8:12])  # ipi_addr
        print(f"got {addr[0]} {dst.removeprefix('::ffff:')} {len(data)}", flush=True)


def capture(iface: str) -> None:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((iface, 0))
    print("ready", flush=True)
    while True:
        frame = s.recv(65535)
        pkt = Ether(frame)
        ip = pkt.getlayer(IP) or pkt.getlayer(IPv6)
        if ip is None:
            continue
        l4 = pkt.getlayer(TCP) or pkt.getlayer(UDP)
        proto = "frag" if pkt.getlayer(IPv6ExtHdrFragment) or (ip.version == 4 and ip.frag) else ""
        proto += str(l4.name).lower() if l4 is not None else ""
        dport = l4.dport if l4 is not None else -1
        print(f"{ip.src} {ip.dst} {proto or '-'} {dport}", flush=True)


def inject(iface: str, packet: bytes) -> None:
    proto = ETH_P_IP if packet[0] >> 4 == 4 else ETH_P_IPV6
    s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(proto))
    s.sendto(packet, (iface, proto))


def main() -> None:
    cmd, arg = sys.argv[1], sys.argv[2]
    if cmd == "listen":
        listen(int(arg))
    elif cmd == "capture":
        capture(arg)
    elif cmd == "inject":
        inject(arg, bytes.fromhex(sys.argv[3]))
    else:
        raise SystemExit(f"unknown command {cmd!r}")


if __name__ == "__main__":
    main()
