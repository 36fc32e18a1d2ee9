"""A straightforward model of share.Share to hold the optimised one to: the same scheduling
written the plain way, with no inlined fast paths, no cached lookups and no state let go.

- every dequeue goes through codel.CoDel.dequeue (RFC 8289's state machine as written);
- a flow's state is let go when `CoDel.is_idle` says it acts like a fresh one, as the
  real queue does (kept, it would reorder the dict that breaks the fattest flow's ties);
- deficit round robin over clients, then RFC 8290's new/old lists within a client,
  exactly as the two papers describe them.

Classification and the token bucket are the real ones (fq_codel.FqCoDel.classify,
shaper.TokenBucket): they have tests of their own, and the model is about order.
"""

from collections import deque
from collections.abc import Callable
from typing import Any

from tidewire.node.core.ecn import mark_ce
from tidewire.node.core.queues.codel import CoDel, Entry
from tidewire.node.core.queues.fq_codel import DROP_BATCH, FqCoDel
from tidewire.node.core.queues.shaper import TokenBucket
from tidewire.node.core.queues.share import BURST_TIME

MTU = 1500


class Totals:
    def __init__(self) -> None:
        self.backlog = 0
        self.packets = 0
        self.drops = 0
        self.marks = 0


class RefFlow:
    """One flow's packets as codel.CodelQueue wants them."""

    def __init__(self, index: int, client: "RefClient", share: "RefShare") -> None:
        self.index, self.client, self.share = index, client, share
        self.entries: deque[Entry] = deque()
        self.size = 0
        self.deficit = 0
        self.listed = False
        self.codel = CoDel()

    @property
    def backlog(self) -> int:
        return self.client.totals.backlog  # the MTU check looks at the whole client

    def pop(self) -> Entry | None:
        if not self.entries:
            return None
        entry = self.entries.popleft()
        self.size -= entry[1]
        for totals in (self.client.totals, self.share.totals):
            totals.backlog -= entry[1]
            totals.packets -= 1
        return entry

    def drop(self, entry: Entry) -> None:
        self.client.totals.drops += 1
        self.share.totals.drops += 1

    def mark(self, entry: Entry) -> Entry | None:
        packet = mark_ce(self.share.packet_of(entry[2]))
        if packet is None:
            return None
        self.client.totals.marks += 1
        return (entry[0], entry[1], self.share.with_packet(entry[2], bytes(packet)))


class RefClient:
    def __init__(self, cap: float | None, overhead: int) -> None:
        self.flows: dict[int, RefFlow] = {}
        self.new: deque[RefFlow] = deque()
        self.old: deque[RefFlow] = deque()
        self.totals = Totals()
        self.deficit = 0
        self.active = False
        self.cap = None
        if cap is not None:
            self.cap = TokenBucket(cap, per_packet_overhead=overhead, burst_time=BURST_TIME)

    def next_entry(self, now: float) -> Entry | None:
        """RFC 8290 section 4.2, the scheduler within the client."""
        while self.new or self.old:
            lst = self.new if self.new else self.old
            flow = lst[0]
            if flow.deficit <= 0:
                flow.deficit += MTU
                lst.popleft()
                self.old.append(flow)
                continue
            entry = flow.codel.dequeue(flow, now)
            if entry is None:
                lst.popleft()
                if lst is self.new and self.old:
                    self.old.append(flow)
                else:
                    flow.listed = False
                    if flow.codel.is_idle(now):
                        del self.flows[flow.index]
                continue
            flow.deficit -= entry[1]
            return entry
        return None


class RefShare:
    """The behaviour of share.Share: same constructor keywords that matter, same verbs."""

    def __init__(
        self,
        deliver: Callable[[Any, float], None],
        *,
        packet_of: Callable[[Any], bytes],
        with_packet: Callable[[Any, bytes], Any],
        rate: float | None,
        seed: int,
        per_packet_overhead: int = 0,
        cap: float | None = None,
        limit: int = 1 << 22,
    ) -> None:
        self.deliver, self.packet_of, self.with_packet = deliver, packet_of, with_packet
        self.bucket = TokenBucket(
            rate, per_packet_overhead=per_packet_overhead, burst_time=BURST_TIME
        )
        self.classifier: FqCoDel[Any] = FqCoDel(seed=seed)
        self.overhead, self.cap, self.limit = per_packet_overhead, cap, limit
        self.clients: dict[bytes, RefClient] = {}
        self.active: deque[RefClient] = deque()
        self.throttled: list[RefClient] = []
        self.totals = Totals()
        self.last = float("-inf")

    @property
    def drops(self) -> int:
        return self.totals.drops

    def __len__(self) -> int:
        return self.totals.packets

    def may_leave(self, bucket: TokenBucket | None, now: float) -> bool:
        return bucket is None or bucket.ready(now)

    def send(self, client: RefClient, item: Any, size: int, now: float) -> None:
        self.bucket.consume(size, now)
        if client.cap is not None:
            client.cap.consume(size, now)
        self.deliver(item, now)

    def enqueue(self, item: Any, key: bytes, size: int, now: float, /) -> None:
        client = self.clients.setdefault(key, RefClient(self.cap, self.overhead))
        idle = not self.active and not client.totals.packets
        if idle and self.may_leave(self.bucket, now) and self.may_leave(client.cap, now):
            self.send(client, item, size, now)
            return
        self.last = now
        index = self.classifier.classify(self.packet_of(item))
        flow = client.flows.get(index) or client.flows.setdefault(
            index, RefFlow(index, client, self)
        )
        flow.entries.append((now, size, item))
        flow.size += size
        for totals in (client.totals, self.totals):
            totals.backlog += size
            totals.packets += 1
        if not flow.listed:
            flow.listed, flow.deficit = True, MTU
            client.new.append(flow)
        if not client.active:
            client.active, client.deficit = True, MTU
            self.active.append(client)
        while self.totals.backlog > self.limit:
            self.overflow()

    def overflow(self) -> None:
        """Half the fattest flow of the fattest client, at most DROP_BATCH packets."""
        client = max(self.clients.values(), key=lambda c: c.totals.backlog)
        flow = max(client.flows.values(), key=lambda f: f.size)
        threshold, freed, dropped = flow.size >> 1, 0, 0
        while flow.entries and dropped < DROP_BATCH:
            entry = flow.pop()
            assert entry is not None
            self.totals.drops += 1
            client.totals.drops += 1
            dropped += 1
            freed += entry[1]
            if freed >= threshold:
                break

    def drain(self, now: float) -> None:
        self.last = now
        for client in list(self.throttled):
            if self.may_leave(client.cap, now):
                self.throttled.remove(client)
                self.active.append(client)
        while self.active and self.may_leave(self.bucket, now):
            client = self.active[0]
            if client.deficit <= 0:
                client.deficit += MTU
                self.active.rotate(-1)
            elif not self.may_leave(client.cap, now):
                self.throttled.append(self.active.popleft())
            elif (entry := client.next_entry(now)) is None:
                self.active.popleft()
                client.active = False
            else:
                client.deficit -= entry[1] + self.overhead
                self.send(client, entry[2], entry[1], now)

    def release(self, *, now: float) -> None:
        self.drain(now)

    def handle_timer(self, *, now: float) -> None:
        self.drain(now)

    def get_timer(self) -> float | None:
        paced = self.bucket.next_at if self.bucket.rate is not None else float("-inf")
        if self.active:
            return max(paced, self.last)
        caps = [c.cap.next_at for c in self.throttled if c.cap is not None]
        return max(paced, min(caps)) if caps else None

    def forget(self, key: bytes) -> None:
        raise NotImplementedError  # not modelled: the traces keep every client


def classify(packet: bytes, *, seed: int, flows: int = 1024) -> int:
    """RFC 8290 section 4.1.1's classification as fq_codel.py describes it, byte by byte."""
    if (
        len(packet) < 20
        or packet[0] >> 4 not in (4, 6)
        or (packet[0] >> 4 == 6 and len(packet) < 40)
    ):
        return flows
    if packet[0] >> 4 == 4:
        ihl = (packet[0] & 15) * 4
        proto = packet[9]
        addresses = int.from_bytes(packet[12:20], "big")
        fragment = int.from_bytes(packet[6:8], "big") & 0x3FFF
        has_ports = proto in (6, 17) and fragment == 0 and ihl >= 20 and len(packet) >= ihl + 4
        ports = packet[ihl : ihl + 4] if has_ports else b""
    else:
        proto = packet[6]
        addresses = int.from_bytes(packet[8:40], "big")
        has_ports = proto in (6, 17) and len(packet) >= 44
        ports = packet[40:44] if has_ports else b""
    if has_ports:
        proto = proto << 32 | int.from_bytes(ports, "big")
    return hash((seed, addresses, proto)) % flows
