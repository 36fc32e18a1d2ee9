"""The Python cost of one packet in each direction of the data path, without I/O.

Two Devices finish a handshake in memory; then 256-packet batches of 1,380-byte TCP
segments go through `DataPath.outbound` (inspect, route, seal, queue for GSO) on one
side, and the datagrams through `Device.receive_datagram` and `DataPath.inbound`
(open, replay window, inspect, source check, user-space GRO, one write per
super-packet to /dev/null) on the other. The AEAD calls are timed alone too, so the
rest is what Python adds per packet. System calls on the real TUN and sockets come on
top (BENCHMARKS.md has the py-spy view of the lab run).

Both data planes are measured when the native one is built (node/dataplane.py): on
it, DataPath seals each batch per peer in one native call and the link opens through
the native session.

    .venv/bin/python netns-lab/bench_datapath.py [--dataplane native|python]
"""

import argparse
import ipaddress
import os
import socket
import struct
import time
from collections import Counter

from tidewire.node.datapath import DataPath
from tidewire.node.dataplane import CHOICES, NATIVE, choose
from tidewire.node.transports.udp import UdpTransport
from tidewire.protocol.link.crypto import clamp, public_key
from tidewire.protocol.link.device import Device
from tidewire.protocol.link.peer import PeerConfig
from tidewire.protocol.types import UDP, Path

A_ADDR, B_ADDR = ("192.0.2.1", 51820), ("198.51.100.2", 51820)
BATCH, ROUNDS, PAYLOAD = 256, 200, 1340
_IP = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIBBHHH")


def segment(seq: int) -> bytes:
    ip = _IP.pack(0x45, 0, 40 + PAYLOAD, 0, 0x4000, 64, 6, 0, b"\n\0\0\1", b"\n\0\0\2")
    return ip + _TCP.pack(40000, 5201, seq, 0, 5 << 4, 0x10, 65535, 0, 0) + bytes(PAYLOAD)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataplane", choices=CHOICES, help="only this one (default: both)")
    args = parser.parse_args()
    for name in [args.dataplane] if args.dataplane else CHOICES:
        choice = choose(name)
        if choice.name != name:
            print(f"{name}: not measured, {choice.why}")
            continue
        print(f"-- {name} data plane")
        measure(name)


def measure(name: str) -> None:
    ka, kb = clamp(os.urandom(32)), clamp(os.urandom(32))
    a = Device(private_key=ka, rng=os.urandom, wall_offset=time.time())
    b = Device(private_key=kb, rng=os.urandom, wall_offset=time.time())
    a.native = b.native = choose(name).factory  # before the handshake makes the keypairs
    pa = a.add_peer(PeerConfig(public_key=public_key(kb), endpoint=B_ADDR))
    pb = b.add_peer(PeerConfig(public_key=public_key(ka)))
    a.encrypt(pa, segment(0), now=0.0)  # staged; starts the handshake
    for data, _ in a.datagrams_to_send():
        b.receive_datagram(data, Path(UDP, A_ADDR), now=0.0)
    for data, _ in b.datagrams_to_send():
        a.receive_datagram(data, Path(UDP, B_ADDR), now=0.0)
    for data, _ in a.datagrams_to_send():
        b.receive_datagram(data, Path(UDP, A_ADDR), now=0.0)  # the staged packet confirms it

    null = os.open(os.devnull, os.O_WRONLY)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    paths = []
    udp = UdpTransport(Counter())
    udp.sockets[socket.AF_INET] = sock
    for dev, peer, dst in ((a, pa, "10.0.0.2/32"), (b, pb, "10.0.0.1/32")):
        dp = DataPath(
            device=dev,
            tun_fd=null,
            transports={UDP: udp},
            policy=None,
            persist_timestamp=lambda key, stamp: None,
        )
        dp.routes.insert(ipaddress.ip_network(dst), peer)
        dp.tun_gro = True
        dp.use_dataplane(choose(name))
        paths.append(dp)
    out, inn = paths
    batch = [segment(1 + i * PAYLOAD) for i in range(BATCH)]
    n = BATCH * ROUNDS

    start = time.perf_counter()
    for _ in range(ROUNDS):
        for packet in batch:
            out.outbound(packet, now=1.0)
        out.seal_batches(now=1.0)  # what after_batch does first (native: one call per peer)
    outbound = (time.perf_counter() - start) / n
    datagrams = [d for runs in udp.batch.pending.values() for d in runs]
    udp.batch.pending.clear()

    start = time.perf_counter()
    for i in range(0, n, BATCH):
        for data in datagrams[i : i + BATCH]:
            inn.receive(data, Path(UDP, A_ADDR), now=1.0)
        inn.flush_tun()
    inbound = (time.perf_counter() - start) / n
    assert not inn.drops and not b.drops, (inn.drops, b.drops)

    kp = pa.current
    assert kp is not None
    if name == NATIVE:
        assert kp.native is not None
    plain, nonce = bytes(1392), bytes(12)
    start = time.perf_counter()
    for _ in range(n):
        sealed = kp.send_aead.encrypt(nonce, plain, None)
    seal = (time.perf_counter() - start) / n
    start = time.perf_counter()
    for _ in range(n):
        kp.send_aead.decrypt(nonce, sealed, None)
    opened = (time.perf_counter() - start) / n

    print(f"outbound: {outbound * 1e6:5.2f} µs per packet ({seal * 1e6:.2f} of it the AEAD)")
    print(f"inbound:  {inbound * 1e6:5.2f} µs per packet ({opened * 1e6:.2f} of it the AEAD)")


if __name__ == "__main__":
    main()
