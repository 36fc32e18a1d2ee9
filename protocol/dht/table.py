"""The routing table of BEP 5: buckets of at most K nodes over ranges of the id space.

Only the bucket that holds our own id splits, so the table keeps many nodes near us
and a few far away, and its size is bounded (160 buckets of K). A node is good while
it has answered us within `GOOD_FOR` (or answered once and queried us since), bad
after `MAX_FAILS` unanswered queries in a row, questionable otherwise. A full bucket
takes a newcomer only in place of a bad node; the newcomer waits in the bucket's
replacement list, and the table names the questionable nodes worth a ping, so a
stranger's flood of new ids cannot push out nodes that still answer. With
`one_per_ip`, an address holds one slot (as libtorrent's restrict_routing_ips).
"""

from dataclasses import dataclass, field

from .ids import ID_SIZE, distance

Address = tuple[str, int]

K = 8
GOOD_FOR = 15 * 60.0
REFRESH_AFTER = 15 * 60.0
MAX_FAILS = 2
ID_SPACE = 1 << (8 * ID_SIZE)


@dataclass(slots=True)
class Node:
    id: bytes
    addr: Address
    last_reply: float | None = None
    last_query: float | None = None
    fails: int = 0

    def good(self, now: float) -> bool:
        if self.fails >= MAX_FAILS or self.last_reply is None:
            return False
        recent = max(self.last_reply, self.last_query or 0.0)
        return now - recent < GOOD_FOR

    def bad(self) -> bool:
        return self.fails >= MAX_FAILS


@dataclass(slots=True)
class Bucket:
    lo: int
    hi: int  # exclusive
    changed: float
    nodes: list[Node] = field(default_factory=list)
    replacements: list[Node] = field(default_factory=list)

    def covers(self, n: int) -> bool:
        return self.lo <= n < self.hi


class RoutingTable:
    def __init__(self, own_id: bytes, *, now: float, one_per_ip: bool = True) -> None:
        self.own_id = own_id
        self.own = int.from_bytes(own_id, "big")
        self.one_per_ip = one_per_ip
        self.buckets = [Bucket(0, ID_SPACE, now)]
        self.counters: dict[str, int] = {}
        self.ips: dict[str, int] = {}  # nodes per address in the table

    def __len__(self) -> int:
        return sum(len(b.nodes) for b in self.buckets)

    def nodes(self) -> list[Node]:
        return [n for b in self.buckets for n in b.nodes]

    def _bucket(self, n: int) -> Bucket:
        for b in self.buckets:
            if b.covers(n):
                return b
        raise AssertionError("the buckets cover the id space")

    def find(self, node_id: bytes) -> Node | None:
        b = self._bucket(int.from_bytes(node_id, "big"))
        return next((n for n in b.nodes if n.id == node_id), None)

    def heard(self, node_id: bytes, addr: Address, *, now: float, replied: bool) -> list[Node]:
        """A node answered us (`replied`) or sent us a query. Returns the questionable
        nodes of a full bucket worth pinging, so the caller can make room."""
        if len(node_id) != ID_SIZE or node_id == self.own_id:
            return []
        n = int.from_bytes(node_id, "big")
        b = self._bucket(n)
        known = next((x for x in b.nodes if x.id == node_id), None)
        if known is not None:
            if known.addr != addr:  # an id moving address: trust it only once it answers
                if not replied:
                    self._count("moved_id_ignored")
                    return []
                self._remove(b, known)
                known.addr = addr
                self._add(b, known)
            self._touch(known, now, replied)
            b.changed = now
            return []
        if self.one_per_ip and self.ips.get(addr[0]):
            self._count("same_ip_refused")
            return []
        node = Node(node_id, addr)
        self._touch(node, now, replied)
        while True:
            if len(b.nodes) < K:
                self._add(b, node)
                b.changed = now
                b.replacements = [r for r in b.replacements if r.id != node_id]
                return []
            bad = next((x for x in b.nodes if x.bad()), None)
            if bad is not None:
                self._remove(b, bad)
                self._count("bad_replaced")
                continue
            if b.covers(self.own) and b.hi - b.lo > K:
                self._split(b)
                b = self._bucket(n)
                continue
            break
        self._remember(b, node)
        return [x for x in b.nodes if not x.good(now)]

    def _add(self, b: Bucket, node: Node) -> None:
        b.nodes.append(node)
        self.ips[node.addr[0]] = self.ips.get(node.addr[0], 0) + 1

    def _remove(self, b: Bucket, node: Node) -> None:
        b.nodes.remove(node)
        left = self.ips.get(node.addr[0], 1) - 1
        if left:
            self.ips[node.addr[0]] = left
        else:
            self.ips.pop(node.addr[0], None)

    def _touch(self, node: Node, now: float, replied: bool) -> None:
        if replied:
            node.last_reply = now
            node.fails = 0
        else:
            node.last_query = now

    def _remember(self, b: Bucket, node: Node) -> None:
        kept = [r for r in b.replacements if r.id != node.id][-(K - 1) :]
        b.replacements = [*kept, node]
        self._count("replacement")

    def _split(self, b: Bucket) -> None:
        mid = (b.lo + b.hi) // 2
        low, high = Bucket(b.lo, mid, b.changed), Bucket(mid, b.hi, b.changed)
        for x in b.nodes:
            (low if int.from_bytes(x.id, "big") < mid else high).nodes.append(x)
        for x in b.replacements:
            (low if int.from_bytes(x.id, "big") < mid else high).replacements.append(x)
        i = self.buckets.index(b)
        self.buckets[i : i + 1] = [low, high]

    def failed(self, node_id: bytes) -> None:
        """A query to this node went unanswered. A bad node gives way to the freshest
        replacement of its bucket."""
        b = self._bucket(int.from_bytes(node_id, "big"))
        node = next((x for x in b.nodes if x.id == node_id), None)
        if node is None:
            return
        node.fails += 1
        if node.bad() and b.replacements:
            self._remove(b, node)
            self._add(b, b.replacements.pop())
            self._count("bad_replaced")

    def closest(self, target: bytes, count: int = K) -> list[Node]:
        """The `count` non-bad nodes nearest `target`."""
        live = [x for x in self.nodes() if not x.bad()]
        live.sort(key=lambda x: distance(x.id, target))
        return live[:count]

    def stale_buckets(self, *, now: float) -> list[tuple[int, int]]:
        """Ranges of buckets unchanged for REFRESH_AFTER: the caller looks up a random id
        in each (and `refreshed` marks them)."""
        return [(b.lo, b.hi) for b in self.buckets if now - b.changed >= REFRESH_AFTER]

    def refreshed(self, lo: int, *, now: float) -> None:
        self._bucket(lo).changed = now

    def next_refresh(self) -> float:
        return min(b.changed for b in self.buckets) + REFRESH_AFTER

    def _count(self, reason: str) -> None:
        self.counters[reason] = self.counters.get(reason, 0) + 1
