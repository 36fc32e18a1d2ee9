"""A network of Babel engines in virtual time, for the routing tests.

Nodes are `Babel` instances keyed by a 32-byte key; links are bidirectional with a
one-way delay each (so the RTT the engines measure is twice the delay). Every message
goes through the control channel's encoder and decoder (protocol/control/channel.py)
and is delivered after the link's delay, or lost if the link is down when it is sent
or when it would arrive. The FIB of each node is what its Install/Uninstall actions
said. `forwarding_loop()` follows next hops for every destination; the simulator
calls a check after every event that changed a FIB. The wire is memoised both ways
(`encode` by message, `decode` by bytes; the messages are frozen): a network repeats
the same hellos and updates many times, and construct's encoder and decoder were 40%
of a large run's time. The bytes and the messages are the same as without it.

How fast (tests.unit.babel_scale, which runs it at scale; docs/routing.md has the
table): `.venv/bin/python -m tests.unit.babel_scale 200 1` converges by t = 130 s and
again 14 s after the busiest link is cut, no loop, 398 destinations and sources at
most, 667,270 messages in 97 s of CPU; `babel_scale 200 2`: 120 s, 12 s, 618,429
messages, 82 s; `babel_scale 400 1`: 130 s, 15 s, 798, 2,604,657 messages, 393 s.
The cost grows as N^2 (every node's table to every neighbour every update
interval): 1,000 nodes is 1.5-2 hours of CPU and has not been run to the end.
"""

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass

from tidewire.node.core.routing.announce import Install, Send, Uninstall
from tidewire.node.core.routing.babel import Babel, Params
from tidewire.node.core.routing.metric import INFINITY
from tidewire.protocol.control import channel

CACHE = 200_000  # messages and datagrams kept each way; then the memo starts again


def key(i: int) -> bytes:
    return b"K" + i.to_bytes(3, "big") + bytes(28)


@dataclass
class Link:
    delay: float
    up: bool = True


# a message in flight: (arrival time, send order, destination, source, bytes); a tuple,
# so that the heap compares in C (seq is unique, so nothing after it is compared)
_Event = tuple[float, int, bytes, bytes, bytes]


class Net:
    def __init__(self, n: int, *, seed: int = 0, params: Params | None = None) -> None:
        self.rnd = random.Random(seed)
        self.params = params or Params()
        self.now = 0.0
        self.keys = [key(i) for i in range(n)]
        self.nodes: dict[bytes, Babel] = {}
        for k in self.keys:
            rng = random.Random(self.rnd.random()).randbytes
            self.nodes[k] = Babel(router_id=k, rng=rng, now=0.0, params=self.params)
        self.links: dict[frozenset[bytes], Link] = {}
        self.fib: dict[bytes, dict[bytes, bytes]] = {k: {} for k in self.keys}
        self.events: list[_Event] = []
        self._seq = 0
        self.delivered = 0
        self.loops_checked = 0
        self.installed: list[tuple[bytes, bytes]] = []  # (node, prefix) since the last check
        # every node's deadline as of its last event (a node's get_timer moves only when
        # it is called), and a heap of them with stale entries skipped: no scan of every
        # node per event. Ties go to the lower index, as a scan in key order would.
        self._encoded: dict[object, bytes] = {}
        self._decoded: dict[bytes, object] = {}
        self.index = {k: i for i, k in enumerate(self.keys)}
        self.timer: dict[bytes, float] = {}
        self.timers: list[tuple[float, int, bytes]] = []
        for k in self.keys:
            self._note_timer(k)

    def _note_timer(self, k: bytes) -> None:
        t = self.nodes[k].get_timer()
        if self.timer.get(k) != t:
            self.timer[k] = t
            heapq.heappush(self.timers, (t, self.index[k], k))

    def connect(self, a: int, b: int, delay: float) -> None:
        ka, kb = self.keys[a], self.keys[b]
        self.links[frozenset((ka, kb))] = Link(delay)
        self.nodes[ka].add_neighbour(kb, now=self.now)
        self.nodes[kb].add_neighbour(ka, now=self.now)
        self._drain(ka)
        self._drain(kb)

    def link(self, a: int, b: int) -> Link:
        return self.links[frozenset((self.keys[a], self.keys[b]))]

    def _drain(self, k: bytes) -> bool:
        self._note_timer(k)
        fib_changed = False
        for act in self.nodes[k].take_actions():
            if isinstance(act, Send):
                link = self.links.get(frozenset((k, act.neighbour)))
                if link is None or not link.up:
                    continue
                self._seq += 1
                data = self._encoded.get(act.message)
                if data is None:
                    if len(self._encoded) >= CACHE:
                        self._encoded.clear()
                    data = self._encoded[act.message] = channel.encode(act.message)
                event = (self.now + link.delay, self._seq, act.neighbour, k, data)
                heapq.heappush(self.events, event)
            elif isinstance(act, Install):
                self.fib[k][act.prefix] = act.next_hop
                self.installed.append((k, act.prefix))
                fib_changed = True
            elif isinstance(act, Uninstall):
                self.fib[k].pop(act.prefix, None)
                fib_changed = True
        return fib_changed

    def run(self, until: float, check: Callable[["Net"], None] | None = None) -> None:
        for k in self.keys:  # a test may have called an engine directly since the last run
            self._note_timer(k)
        timers, timer = self.timers, self.timer
        while True:
            while timers[0][0] != timer[timers[0][2]]:
                heapq.heappop(timers)  # stale: that node's deadline moved since
            t_timer, _, timer_node = timers[0]
            t_msg = self.events[0][0] if self.events else float("inf")
            t = min(t_timer, t_msg)
            if t > until:
                self.now = until
                return
            self.now = max(self.now, t)
            if t_msg <= t_timer:
                _, _, dst, src, data = heapq.heappop(self.events)
                link = self.links.get(frozenset((src, dst)))
                if link is None or not link.up:
                    continue
                msg = self._decoded.get(data)
                if msg is None:
                    if len(self._decoded) >= CACHE:
                        self._decoded.clear()
                    msg = self._decoded[data] = channel.decode(data)
                assert not isinstance(msg, channel.Hello | channel.Invoice)
                self.nodes[dst].receive(src, msg, now=self.now)  # type: ignore[arg-type]
                self.delivered += 1
                node = dst
            else:
                self.nodes[timer_node].handle_timer(now=self.now)
                node = timer_node
            if self._drain(node) and check is not None:
                check(self)

    # -- what the tests assert

    def forwarding_loop(self) -> tuple[bytes, list[bytes]] | None:
        """A destination and a cycle of next hops towards it, if there is one."""
        self.loops_checked += 1
        for d in self.keys:
            done: set[bytes] = set()
            for start in self.keys:
                path: list[bytes] = []
                seen: set[bytes] = set()
                u: bytes | None = start
                while u is not None and u != d and u not in done:
                    if u in seen:
                        return d, path[path.index(u) :]
                    seen.add(u)
                    path.append(u)
                    u = self.fib[u].get(d)
                done.update(seen)
        return None

    def new_loop(self) -> tuple[bytes, list[bytes]] | None:
        """Like forwarding_loop, but only through the next hops installed since the last
        call: a new loop must pass through one of them (for large networks)."""
        changed, self.installed = self.installed, []
        for node, d in changed:
            path, u = [node], self.fib[node].get(d)
            while u is not None and u != d:
                if u == node:
                    return d, path
                if len(path) > len(self.keys):
                    return d, path  # a loop that does not pass through `node`: still a loop
                path.append(u)
                u = self.fib[u].get(d)
        return None

    def measured_cost(self, a: bytes, b: bytes) -> int:
        n = self.nodes[a].neighbours.get(b)
        return INFINITY if n is None else n.cost

    def shortest(self, dest: bytes) -> dict[bytes, int]:
        """Metric of the best path from each node to `dest` over the costs the nodes
        measure now (Bellman-Ford; the graphs are small)."""
        dist = {k: INFINITY for k in self.keys}
        dist[dest] = 0
        for _ in self.keys:
            for pair, link in self.links.items():
                if not link.up:
                    continue
                a, b = tuple(pair)
                for u, v in ((a, b), (b, a)):
                    c = self.measured_cost(u, v)
                    if c < INFINITY and dist[v] < INFINITY:
                        dist[u] = min(dist[u], min(INFINITY, c + dist[v]))
        return dist

    def metric(self, node: bytes, dest: bytes) -> int:
        d = self.nodes[node].destinations.get(dest)
        if d is None or d.selected is None:
            return INFINITY
        return d.selected.metric
