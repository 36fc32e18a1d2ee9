"""FQ-CoDel (RFC 8290), as Linux's net/sched/sch_fq_codel.c: flow queueing with CoDel per flow.

Classification (RFC 8290 section 4.1.1): each packet goes to one of FLOWS queues by a hash
of its inner 5-tuple, read here straight from the IPv4/IPv6 header: addresses, protocol
and, for unfragmented TCP/UDP, the two ports. Other protocols (ICMP, ESP, a fragment, an
IPv6 packet with extension headers) hash by addresses and protocol alone; bytes that are
not IPv4/IPv6 go to one extra fallback queue. The hash function and its perturbation
seed are the caller's, so this module draws no randomness.

Scheduling (section 4.2): deficit round robin with a quantum of one MTU over two lists.
A queue that becomes active joins the tail of `new_flows` with a full quantum and is
served before any of `old_flows`; a queue whose deficit is spent moves to the tail of
`old_flows` with another quantum. A new queue that empties goes through `old_flows`
once before leaving (section 4.2's guard against starvation by flows that keep
reappearing as new), an old queue that empties leaves. So sparse flows (DNS, ACKs, a
game's updates, interactive keystrokes) pass bulk flows and see almost no queue.

Each queue runs CoDel (codel.py) at dequeue: it drops, or ECN-marks when the caller
gave `mark` and the packet is ECN-capable (section 5.1; ecn.py sets CE), and the MTU
check looks at all the queues' bytes, as Linux passes the qdisc's backlog.

When more than `limit` bytes are held (section 4.1.3), packets go from the head of
the fattest queue, up to half its bytes or 64 packets at once (fq_codel_drop's batch),
which punishes the flow that fills the buffer and amortises the search.

A queue's state is kept only while it is listed or its CoDel remembers something
(`CoDel.is_idle`), so memory follows the flows in use, at most FLOWS + 1.
"""

from collections import deque
from collections.abc import Callable
from struct import Struct
from typing import Any, Generic, TypeVar

from . import codel
from .codel import CoDel, Entry

T = TypeVar("T")

FLOWS = 1024  # queues (RFC 8290 section 4.1.1 and Linux's default)
QUANTUM = 1500  # bytes a queue may send per round: one MTU (section 4.2)
LIMIT = 1 << 21  # bytes held before the fattest queue loses packets (section 4.1.3)
DROP_BATCH = 64  # packets dropped at most per overflow (Linux's drop_batch_size)

TCP = 6
UDP = 17

_IPV4 = Struct("!6xH1xB2xQ")  # flags and fragment offset, protocol, the two addresses
_IPV4_PLAIN = Struct("!6xH1xB2xQI")  # the same and the ports, for a 20-byte header
_PORTS = Struct("!I")  # the two ports as one integer

# (addresses, protocol << 32 | ports, seed) -> hash; the addresses are the two of the
# header read as one integer, the ports the 4 bytes after the IP header (0 when none)
FlowHash = Callable[[int, int, int], int]


def flow_hash(addresses: int, proto_ports: int, seed: int) -> int:
    """The default hash: Python's tuple hash, which for integers is the same in every
    process (no PYTHONHASHSEED), mixed with the caller's seed."""
    return hash((seed, addresses, proto_ports))


class Flow:
    """One queue: its packets, its DRR deficit and its CoDel state (a codel.CodelQueue)."""

    __slots__ = ("bytes", "codel", "deficit", "index", "listed", "owner", "packets")

    def __init__(self, index: int, owner: "FqCoDel[Any]") -> None:
        self.index = index
        self.owner = owner
        self.packets: deque[Entry] = deque()
        self.bytes = 0
        self.deficit = 0
        self.listed = False  # on new_flows or old_flows
        self.codel = CoDel()

    @property
    def backlog(self) -> int:
        return self.owner.backlog

    def pop(self) -> Entry | None:
        if not self.packets:
            return None
        entry = self.packets.popleft()
        size = entry[1]
        self.bytes -= size
        owner = self.owner
        owner.backlog -= size
        owner.packets -= 1
        return entry

    def drop(self, entry: Entry) -> None:
        self.owner.drops += 1

    def mark(self, entry: Entry) -> Entry | None:
        owner = self.owner
        if owner.mark is None:
            return None
        item = owner.mark(entry[2])
        if item is None:
            return None
        owner.marks += 1
        return (entry[0], entry[1], item)


class FqCoDel(Generic[T]):
    """Items of type T with their packet bytes in; `dequeue` gives (enqueue time, size,
    item) out. Counters: drops (CoDel's and the limit's), overlimit (the limit's alone),
    marks, backlog (bytes), packets, sojourn (of the last packet dequeued)."""

    __slots__ = (
        "backlog",
        "drops",
        "flows",
        "hash",
        "interval",
        "limit",
        "mark",
        "marks",
        "mtu",
        "new_flows",
        "nflows",
        "old_flows",
        "overlimit",
        "packets",
        "quantum",
        "seed",
        "sojourn",
        "target",
    )

    def __init__(
        self,
        *,
        seed: int,
        hash: FlowHash = flow_hash,
        mark: Callable[[T], T | None] | None = None,
        flows: int = FLOWS,
        quantum: int = QUANTUM,
        limit: int | None = LIMIT,
        target: float = codel.TARGET,
        interval: float = codel.INTERVAL,
        mtu: int = codel.MTU,
    ) -> None:
        self.seed = seed
        self.hash = hash
        self.mark = mark
        self.nflows = flows
        self.quantum = quantum
        self.limit = limit
        self.target = target
        self.interval = interval
        self.mtu = mtu
        self.flows: dict[int, Flow] = {}
        self.new_flows: deque[Flow] = deque()
        self.old_flows: deque[Flow] = deque()
        self.backlog = 0
        self.packets = 0
        self.drops = 0
        self.overlimit = 0
        self.marks = 0
        self.sojourn = 0.0

    def classify(self, packet: bytes | bytearray | memoryview) -> int:
        """The queue index of a packet: 0..flows-1 by hash, `flows` for non-IP bytes."""
        n = len(packet)
        if n < 20:
            return self.nflows
        b0 = packet[0]
        if b0 == 0x45 and n >= 24:  # IPv4 with no options, most packets: one unpack
            fragment, proto, addresses, ports = _IPV4_PLAIN.unpack_from(packet)
            if proto in (TCP, UDP) and not fragment & 0x3FFF:
                proto = proto << 32 | ports
        elif b0 >> 4 == 4:
            fragment, proto, addresses = _IPV4.unpack_from(packet)
            ihl = (b0 & 15) << 2
            if (
                proto in (TCP, UDP)
                and not fragment & 0x3FFF  # not a fragment (MF or offset)
                and ihl >= 20
                and n >= ihl + 4
            ):
                proto = proto << 32 | _PORTS.unpack_from(packet, ihl)[0]
        elif b0 >> 4 == 6 and n >= 40:
            proto = packet[6]
            addresses = int.from_bytes(packet[8:40])
            if proto in (TCP, UDP) and n >= 44:
                proto = proto << 32 | _PORTS.unpack_from(packet, 40)[0]
        else:
            return self.nflows
        if self.hash is flow_hash:  # the default, inlined: a call fewer per packet
            return hash((self.seed, addresses, proto)) % self.nflows
        return self.hash(addresses, proto, self.seed) % self.nflows

    def enqueue(
        self, item: T, packet: bytes | bytearray | memoryview, size: int, now: float
    ) -> None:
        self.add(self.classify(packet), item, size, now)
        limit = self.limit
        while limit is not None and self.backlog > limit:
            self.drop_fattest()

    def add(self, index: int, item: T, size: int, now: float) -> None:
        """Queue an item in flow `index` (from `classify`), the flow joining new_flows if
        it was not listed; the byte limit is the caller's."""
        flow = self.flows.get(index)
        if flow is None:
            flow = self.flows[index] = Flow(index, self)
        flow.packets.append((now, size, item))
        flow.bytes += size
        self.backlog += size
        self.packets += 1
        if not flow.listed:
            flow.listed = True
            flow.deficit = self.quantum
            self.new_flows.append(flow)

    def dequeue(self, now: float) -> Entry | None:
        """The next packet to send at `now`, or None when nothing is held."""
        new_flows = self.new_flows
        old_flows = self.old_flows
        while True:
            if new_flows:
                head = new_flows
            elif old_flows:
                head = old_flows
            else:
                return None
            flow = head[0]
            if flow.deficit <= 0:
                flow.deficit += self.quantum
                head.popleft()
                old_flows.append(flow)
                continue
            got = flow.codel.dequeue(flow, now, self.target, self.interval, self.mtu)
            if got is None:
                head.popleft()
                if head is new_flows and old_flows:
                    old_flows.append(flow)
                else:
                    flow.listed = False
                    if flow.codel.is_idle(now, self.interval):
                        del self.flows[flow.index]
                continue
            flow.deficit -= got[1]
            self.sojourn = now - got[0]
            return got

    def drop_fattest(self) -> int:
        """Drop from the head of the queue holding most bytes: half its bytes or DROP_BATCH
        packets, whichever comes first. Returns the packets dropped."""
        if not self.packets:
            return 0
        fattest = max(self.flows.values(), key=lambda flow: flow.bytes)
        threshold = fattest.bytes >> 1
        dropped = 0
        freed = 0
        queue = fattest.packets
        while queue and dropped < DROP_BATCH:
            size = queue.popleft()[1]
            dropped += 1
            freed += size
            if freed >= threshold:
                break
        fattest.bytes -= freed
        self.backlog -= freed
        self.packets -= dropped
        self.drops += dropped
        self.overlimit += dropped
        return dropped

    def active_flows(self) -> int:
        return sum(1 for flow in self.flows.values() if flow.packets)

    def __len__(self) -> int:
        return self.packets
