"""How long the sans-IO core takes to decrypt one transport message, warm and cold.

After a handshake between two Devices (no network), the same kind of 84-byte message
is decrypted back to back, then with the process sleeping 1, 10 and 50 ms before each
one. On a VM whose idle vCPUs halt, sleeping leaves the caches cold, which is where
most of tidewire's idle ping latency goes (BENCHMARKS.md).

    .venv/bin/python netns-lab/bench_cold.py
"""

import os
import statistics
import time

from tidewire.protocol.link.crypto import clamp, public_key
from tidewire.protocol.link.device import Device
from tidewire.protocol.link.peer import PeerConfig
from tidewire.protocol.types import UDP, Path

PACKET = bytes.fromhex("4500005400004000400100000a0000010a000002") + bytes(64)
A_ADDR, B_ADDR = ("192.0.2.1", 51820), ("198.51.100.2", 51820)


def main() -> None:
    ka, kb = clamp(os.urandom(32)), clamp(os.urandom(32))
    a = Device(private_key=ka, rng=os.urandom, wall_offset=time.time())
    b = Device(private_key=kb, rng=os.urandom, wall_offset=time.time())
    pa = a.add_peer(PeerConfig(public_key=public_key(kb), endpoint=B_ADDR))
    b.add_peer(PeerConfig(public_key=public_key(ka)))
    a.encrypt(pa, PACKET, now=0.0)  # staged; starts the handshake
    for data, _ in a.datagrams_to_send():
        b.receive_datagram(data, Path(UDP, A_ADDR), now=0.0)
    for data, _ in b.datagrams_to_send():
        a.receive_datagram(data, Path(UDP, B_ADDR), now=0.0)
    messages = [d for d, _ in a.datagrams_to_send()]
    messages += [a.encrypt(pa, PACKET, now=0.0) or b"" for _ in range(400)]
    for data in messages[:-400]:
        b.receive_datagram(data, Path(UDP, A_ADDR), now=0.0)  # the staged packet: confirms it
    it = iter(messages[-400:])
    for gap in (0.0, 0.001, 0.01, 0.05):
        times = []
        for _ in range(100):
            if gap:
                time.sleep(gap)
            start = time.perf_counter_ns()
            got = b.receive_datagram(next(it), Path(UDP, A_ADDR), now=0.0)
            times.append(time.perf_counter_ns() - start)
            assert got is not None
        median = statistics.median(times) / 1000
        print(f"sleep {gap * 1000:>4.0f} ms before each: median {median:7.1f} µs")


if __name__ == "__main__":
    main()
