"""The Python cost of one packet in each direction of the data path, without I/O.

Two Devices finish a handshake in memory; then 256-packet batches of 1,380-byte TCP
segments go through `DataPath.outbound` (inspect, route, seal, queue for GSO) on one
side, and the datagrams through `Device.receive_datagram` and `DataPath.inbound`
(open, replay window, inspect, source check, user-space GRO, one write per
super-packet to /dev/null) on the other. The AEAD calls are timed alone too, so the
rest is what Python adds per packet. System calls on the real TUN and sockets come on
top (BENCHMARKS.md has the py-spy view of the lab run).

Each round of a batch is timed alone and the fastest round is reported beside the mean:
on a machine shared with other work the fastest is the one that says what the code
costs. `--ecn` sends ECN-capable segments (ECT(0)) and hands them in with an ECT(0)
outer field, as an ECN flow's packets travel (the RFC 6040 steps on both sides).

With `--share`, both queue slots hold [share]'s queue (node/core/queues/share.py) paced
at 1 Gbit/s, and packets arrive in bursts at that rate in virtual time: past the
pacer's burst the batch queues, so most packets go through DRR, FQ-CoDel and the
pacer (the sojourn stays under CoDel's target: no drops). Every WAKE packets the queue
is released, their wire time passes and its timer fires once, as the node's timer task
wakes late and lets out all that is due. Compare with a run without it:
the difference is the queues' cost per packet in the data path. `--load 1.05` offers 5%
over the rate: the outbound queue then stands and every packet goes through FQ-CoDel.

Both data planes are measured when the native one is built (node/dataplane.py): on
it, DataPath seals each batch per peer in one native call and the link opens through
the native session. Inbound is measured twice: datagram by datagram, and as a UDP GRO
socket hands them over, READ per read, each read opened in one native call. Last, the
TUN offloads alone: cutting a 46-segment TSO read and coalescing a batch for the TUN.

    .venv/bin/python netns-lab/bench_datapath.py [--ecn] [--dataplane native|python]
        [--share [--queue native|python] [--load X]]
"""

import argparse
import ipaddress
import os
import socket
import struct
import time
from collections import Counter

from tidewire.node.core import queues
from tidewire.node.core.gro import coalesce
from tidewire.node.core.gso import split
from tidewire.node.core.queues import implementation
from tidewire.node.core.queues.share import Share
from tidewire.node.datapath import DataPath
from tidewire.node.dataplane import CHOICES, choose, load
from tidewire.node.sharing import OVERHEAD, _inbound, _outbound
from tidewire.node.transports.udp import UdpTransport
from tidewire.protocol.link.crypto import clamp, public_key
from tidewire.protocol.link.device import Device
from tidewire.protocol.link.peer import PeerConfig
from tidewire.protocol.types import UDP, Path

A_ADDR, B_ADDR = ("192.0.2.1", 51820), ("198.51.100.2", 51820)
BATCH, ROUNDS, PAYLOAD = 256, 200, 1340
_IP = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIBBHHH")
RATE = 125e6  # bytes per second the --share queues pace to
LOAD = 1.0  # offered over RATE
READ = 64  # datagrams per socket read when batched: a full UDP GRO buffer
WAKE = 64  # packets between timer wake-ups with --share: their wire time is under the burst


def segment(seq: int, tos: int = 0) -> bytes:
    ip = _IP.pack(0x45, tos, 40 + PAYLOAD, 0, 0x4000, 64, 6, 0, b"\n\0\0\1", b"\n\0\0\2")
    return ip + _TCP.pack(40000, 5201, seq, 0, 5 << 4, 0x10, 65535, 0, 0) + bytes(PAYLOAD)


def shared(dp: DataPath, queue: str | None) -> None:
    """[share]'s queues in both slots, built by node/sharing.py's own builders: with the
    class share_class() picks (the native one when built), or the one `--queue` names."""
    real = queues.share_class
    if queue == "python":
        setattr(queues, "share_class", lambda **_: Share)  # noqa: B010 (what _outbound calls)
    try:
        out = _outbound(dp, RATE, seed=1, cap=None)
        inn = _inbound(dp, RATE, seed=2, cap=None)
    finally:
        setattr(queues, "share_class", real)  # noqa: B010
    dp.set_queues(out, inn)
    print(f"queues: {implementation(out)}")


def pace(queue: object, now: float) -> float:
    """After WAKE packets at `now`: release, let their wire time pass, fire the timer once
    (a node's timer task wakes late and lets out everything due)."""
    assert implementation(queue) is not None
    queue.release(now=now)  # type: ignore[attr-defined]
    now += WAKE * (len(segment(0)) + OVERHEAD) / RATE / LOAD
    if (timer := queue.get_timer()) is not None:  # type: ignore[attr-defined]
        queue.handle_timer(now=max(now, timer))  # type: ignore[attr-defined]
    return now


def receive_rounds(
    inn: DataPath, datagrams: list[bytes], *, ecn: int, share: bool, now: float, read: int = 1
) -> tuple[float, float]:
    """Hand `datagrams` to the data path in rounds of BATCH, one at a time or `read` at a
    time (as one GRO read); the mean and the fastest round's cost per datagram."""
    path = Path(UDP, A_ADDR)
    rounds = []
    for i in range(0, len(datagrams), BATCH):
        start = time.perf_counter()
        chunk = datagrams[i : i + BATCH]
        for j in range(0, len(chunk), read):
            if read == 1:
                inn.receive(chunk[j], path, now=now, ecn=ecn)
            else:
                inn.receive_batch(chunk[j : j + read], path, now=now, ecn=ecn)
            if share and (j + read) % WAKE < read:
                now = pace(inn.in_queue, now)
        inn.flush_tun()
        rounds.append(time.perf_counter() - start)
    return sum(rounds) / len(datagrams), min(rounds) / BATCH


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--ecn", action="store_true", help="ECN-capable segments (ECT(0))")
    parser.add_argument("--share", action="store_true", help="[share]'s queues in both slots")
    parser.add_argument("--dataplane", choices=CHOICES, help="only this one (default: both)")
    parser.add_argument(
        "--queue",
        choices=("native", "python"),
        help="with --share: this Share (default: the node's)",
    )
    parser.add_argument(
        "--load",
        type=float,
        default=LOAD,
        help="with --share: offered over the rate (1.05: a standing queue)",
    )
    args = parser.parse_args()
    globals()["LOAD"] = args.load  # pace() reads it
    for name in [args.dataplane] if args.dataplane else CHOICES:
        choice = choose(name)
        if choice.name != name:
            print(f"{name}: not measured, {choice.why}")
            continue
        print(f"-- {name} data plane")
        measure(name, ecn=args.ecn, share=args.share, queue_kind=args.queue)


def measure(name: str, *, ecn: bool, share: bool, queue_kind: str | None = None) -> None:
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
        if share:
            shared(dp, queue_kind)
        paths.append(dp)
    out, inn = paths
    batch = [segment(1 + i * PAYLOAD, 2 if ecn else 0) for i in range(BATCH)]
    n = BATCH * ROUNDS

    now = 1.0
    rounds = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for i, packet in enumerate(batch, 1):
            out.outbound(packet, now=now)
            if share and i % WAKE == 0:
                now = pace(out.out_queue, now)
        out.seal_batches(now=now)  # what after_batch does first (native: one call per peer)
        rounds.append(time.perf_counter() - start)
    outbound, outbound_best = sum(rounds) / n, min(rounds) / BATCH
    datagrams = [d for runs in udp.batch.pending.values() for d in runs]
    udp.batch.pending.clear()

    outer = 2 if ecn else 0  # ECT(0), as the sender's outer header carries it
    half = len(datagrams) // 2 // BATCH * BATCH  # fewer than sent if the queue dropped some
    inbound, inbound_best = receive_rounds(inn, datagrams[:half], ecn=outer, share=share, now=now)
    # the other half as a UDP GRO socket hands it over: READ datagrams per read, each
    # read opened in one native call (DataPath.receive_batch)
    batched, batched_best = receive_rounds(
        inn, datagrams[half : 2 * half], ecn=outer, share=share, now=now, read=READ
    )
    assert not inn.drops and not b.drops, (inn.drops, b.drops)
    n = half

    kp = pa.current
    assert kp is not None
    plain, nonce = bytes(1392), bytes(12)
    start = time.perf_counter()
    for _ in range(n):
        sealed = kp.send_aead.encrypt(nonce, plain, None)
    seal = (time.perf_counter() - start) / n
    start = time.perf_counter()
    for _ in range(n):
        kp.send_aead.decrypt(nonce, sealed, None)
    opened = (time.perf_counter() - start) / n

    for name, mean, best, aead in (
        ("outbound", outbound, outbound_best, seal),
        ("inbound: ", inbound, inbound_best, opened),
        (f"inbound, reads of {READ}:", batched, batched_best, opened),
    ):
        print(
            f"{name} {mean * 1e6:5.2f} µs per packet, fastest round {best * 1e6:5.2f}"
            f" ({aead * 1e6:.2f} of it the AEAD)"
        )
    # the TUN offloads alone: a 64 KiB TSO read cut into segments, and a batch of
    # segments coalesced into TUN writes, per segment (the native plane's or Python's)
    frames = coalesce(batch[:46])
    cut = out._native_split or split
    start = time.perf_counter()
    for _ in range(ROUNDS):
        cut(memoryview(frames[0]))
    per_cut = (time.perf_counter() - start) / ROUNDS / 46
    module = load()
    merge = module.coalesce if inn._native_write is not None and module else coalesce
    start = time.perf_counter()
    for _ in range(ROUNDS):
        merge(batch)
    per_merge = (time.perf_counter() - start) / ROUNDS / BATCH
    print(f"TSO read cut: {per_cut * 1e6:.2f} µs per segment; GRO write: {per_merge * 1e6:.2f}")
    for name, queue in (("outbound", out.out_queue), ("inbound", inn.in_queue)):
        if implementation(queue) is not None:
            st = queue.stats()  # type: ignore[union-attr]
            print(f"{name} queue: {st['drops']} dropped, {st['backlog_packets']} held at the end")


if __name__ == "__main__":
    main()
