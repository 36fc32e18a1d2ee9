"""An in-memory network of DHT nodes in virtual time (tests only).

Datagrams are delivered in the order they were sent, except to or from nodes that are
down; timers fire at their deadlines. Only nodes that did something are asked for
their output, so networks of hundreds of nodes stay fast.
"""

import hashlib
import heapq
import random
from collections import deque
from collections.abc import Callable

from tidewire.protocol.dht.node import DhtNode

Address = tuple[str, int]


def rng_for(seed: int) -> Callable[[int], bytes]:
    r = random.Random(seed)
    return lambda n: r.randbytes(n)


class Net:
    def __init__(self, n: int, seed: int = 1) -> None:
        self.now = 0.0
        self.nodes: dict[Address, DhtNode] = {}
        self.down: set[Address] = set()
        self.delivered = 0
        r = random.Random(seed)
        for i in range(n):
            self.add(hashlib.sha1(b"node %d" % r.getrandbits(64)).digest(), seed + i)

    def add(self, node_id: bytes, seed: int) -> Address:
        i = len(self.nodes)
        addr = (f"10.{i // 250}.{i % 250 + 1}.1", 6881)
        self.nodes[addr] = DhtNode(node_id, rng=rng_for(seed), now=self.now)
        return addr

    def run(self, seconds: float = 30.0) -> None:
        end = self.now + seconds
        dirty = set(self.nodes)
        while True:
            queue: deque[tuple[bytes, Address, Address]] = deque()
            while dirty or queue:
                for addr in dirty:
                    queue.extend((d, addr, to) for d, to in self.nodes[addr].datagrams())
                dirty = set()
                while queue:
                    data, src, dst = queue.popleft()
                    node = self.nodes.get(dst)
                    if node is None or dst in self.down or src in self.down:
                        continue
                    node.receive(data, src, now=self.now)
                    self.delivered += 1
                    queue.extend((d, dst, to) for d, to in node.datagrams())
            timers = [(n.get_timer(), a) for a, n in self.nodes.items()]
            nxt = min(t for t, _ in timers)
            if nxt > end:
                self.now = end
                return
            self.now = max(self.now, nxt)
            for t, a in heapq.nsmallest(len(timers), timers):
                if t > self.now:
                    break
                self.nodes[a].handle_timer(now=self.now)
                dirty.add(a)

    def bootstrap_all(self, step: float = 3.0) -> None:
        first = next(iter(self.nodes))
        for addr, node in self.nodes.items():
            if addr != first and addr not in self.down:
                node.bootstrap([first], now=self.now)
                self.run(step)
        for node in self.nodes.values():
            node.take_events()
