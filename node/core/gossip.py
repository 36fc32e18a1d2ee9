"""Gossip of node records among tidewire neighbours (docs/protocol/gossip.md).

Neighbours are native peers with a session. When a session is established, we ask
the peer for what it took since we last asked (pull on connect: a cursor into the
order in which it took records, under its cache epoch, so a restarted peer answers
from the start); the answer is a bounded batch of pushes and a `RecordDone` that says
where to go on from and whether more wait. A record newly taken (from a neighbour,
the DHT, or our own, re-signed) is pushed once to each neighbour not known to have
it. A pull is asked again every REPULL seconds (anti-entropy) and retried when its
answer does not come.

Everything a neighbour sends goes through `RecordCache.offer(source="gossip")`: a
record that does not verify, or is not newer than what we hold, is neither kept nor
passed on. Bounds: at most MAX_NEIGHBOURS neighbours (the least recently connected
gives way), at most MAX_KNOWN remembered "has it" entries per neighbour, PULL_BATCH
records per answer, and the cache's own limit in total. Per source, pushes we did
not ask for are rate-limited (a token bucket of PUSH_BURST, refilled at PUSH_RATE
per second), as are the pulls we answer. Nothing here does I/O: `send(peer_key,
message)` is the control plane's, and `now` is monotonic (records' expiries are wall
time: `wall_offset` converts).
"""

from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tidewire.node.core.discovery import RecordCache
from tidewire.protocol.control import gossip
from tidewire.protocol.control.gossip import RecordDone, RecordPull, RecordPush
from tidewire.protocol.dht.items import MutableItem
from tidewire.protocol.dht.limits import Bucket

MAX_NEIGHBOURS = 64
MAX_KNOWN = 256  # per neighbour: which records (key -> seq) it is known to have
PULL_BATCH = 32  # records in one answer to a pull
PULL_RETRY = 5.0  # no RecordDone after this long: ask again
PULL_TRIES = 3
REPULL = 600.0  # anti-entropy: ask each neighbour again this often
RECONNECT_PULL = 60.0  # a new handshake sooner than this after a pull asks nothing
PUSH_RATE, PUSH_BURST = 1.0, 32.0  # unsolicited pushes per second per neighbour
PULL_RATE, PULL_BURST = 1.0, 8.0  # pulls answered per second per neighbour


@dataclass
class Neighbour:
    has: "OrderedDict[bytes, int]" = field(default_factory=OrderedDict)  # key -> seq
    epoch: bytes = gossip.NO_EPOCH  # its cache's epoch, and our cursor into it
    cursor: int = 0
    pull_due: float | None = None
    pull_tries: int = 0
    pulling: bool = False
    pulled_at: float | None = None
    solicited: int = 0  # pushes still expected in answer to our pull
    pushes: Bucket = field(default_factory=lambda: Bucket(PUSH_RATE, PUSH_BURST))
    pulls: Bucket = field(default_factory=lambda: Bucket(PULL_RATE, PULL_BURST))

    def knows(self, key: bytes, seq: int) -> bool:
        return self.has.get(key, -1) >= seq

    def learn(self, key: bytes, seq: int) -> None:
        self.has[key] = max(seq, self.has.pop(key, -1))
        while len(self.has) > MAX_KNOWN:
            self.has.popitem(last=False)


class Gossip:
    def __init__(
        self,
        *,
        cache: RecordCache,
        send: Callable[[bytes, Any], None],
        own_key: bytes,
        epoch: bytes,
        wall_offset: float,
    ) -> None:
        """`own_key`: our Ed25519 key (our own record never comes in from outside);
        `epoch`: 8 random bytes, new each run."""
        self.cache = cache
        self.send = send
        self.own_key = own_key
        self.epoch = epoch
        self.wall_offset = wall_offset
        self.own: MutableItem | None = None
        self.neighbours: OrderedDict[bytes, Neighbour] = OrderedDict()
        self.order: dict[bytes, tuple[int, int]] = {}  # record key -> (when taken, seq)
        self.taken_count = 0
        self.counters: Counter[str] = Counter()
        self.on_taken: Callable[[], None] | None = None  # the shell saves the cache

    def register(self, control: Any) -> None:
        control.register(RecordPush, self._on_push)
        control.register(RecordPull, self._on_pull)
        control.register(RecordDone, self._on_done)
        control.on_established.append(self.connected)
        control.on_forget.append(self.forget)

    # -- the verbs the shell calls -------------------------------------------------

    def connected(self, peer_key: bytes, *, now: float) -> None:
        """A session with a native peer is established: pull, and tell it our record."""
        n = self._neighbour(peer_key)
        if n.pulling or (n.pulled_at is not None and now - n.pulled_at < RECONNECT_PULL):
            return
        n.pull_tries = 0
        self._pull(peer_key, n, now=now)
        if self.own is not None and not n.knows(self.own.key, self.own.seq):
            self._push(peer_key, n, self.own)

    def forget(self, peer_key: bytes) -> None:
        self.neighbours.pop(peer_key, None)

    def set_own(self, item: MutableItem, *, now: float) -> None:
        """Our own record, signed anew: push it to every neighbour."""
        self.own = item
        self._spread(item, source=None)

    def taken(self, item: MutableItem, *, now: float) -> None:
        """A record the cache took from elsewhere (the DHT): pass it on."""
        self._spread(item, source=None)

    # -- handlers (the control plane calls them) ---------------------------------

    def _on_push(self, peer_key: bytes, msg: RecordPush, *, now: float) -> None:
        n = self._neighbour(peer_key)
        if n.solicited > 0:
            n.solicited -= 1
        elif not n.pushes.take(now=now):
            self.counters["push_rate_limited"] += 1
            return
        item = msg.item()
        if item.key == self.own_key:
            self.counters["push_own"] += 1
            return
        if self.cache.offer(item, source="gossip", now=now + self.wall_offset) is None:
            self.counters["push_refused"] += 1
            return
        self.counters["push_taken"] += 1
        n.learn(item.key, item.seq)
        self._spread(item, source=peer_key)
        if self.on_taken is not None:
            self.on_taken()

    def _on_pull(self, peer_key: bytes, msg: RecordPull, *, now: float) -> None:
        n = self._neighbour(peer_key)
        if not n.pulls.take(now=now):
            self.counters["pull_rate_limited"] += 1
            return
        since = msg.since if msg.epoch == self.epoch else 0
        self._sync_order(now=now)
        later = sorted((t, k) for k, (t, _) in self.order.items() if t > since)
        sent, cursor = 0, since
        for t, k in later:
            if sent == PULL_BATCH:
                break
            cursor = t
            item = self.own if self.own is not None and k == self.own.key else None
            if item is None:
                item = self.cache.records[k].item
            if not n.knows(item.key, item.seq):
                self._push(peer_key, n, item)
                sent += 1
        more = bool(later) and cursor < later[-1][0]
        self.counters["pull_answered"] += 1
        self.send(peer_key, RecordDone(self.epoch, cursor, more))

    def _on_done(self, peer_key: bytes, msg: RecordDone, *, now: float) -> None:
        n = self.neighbours.get(peer_key)
        if n is None or not n.pulling:
            self.counters["done_unsolicited"] += 1
            return
        n.epoch, n.cursor = msg.epoch, msg.next
        n.pulling, n.solicited, n.pull_tries = False, 0, 0
        n.pulled_at = now
        if msg.more:
            self._pull(peer_key, n, now=now)
        else:
            n.pull_due = now + REPULL

    # -- timers --------------------------------------------------------------------

    def get_timer(self) -> float | None:
        dues = [n.pull_due for n in self.neighbours.values() if n.pull_due is not None]
        return min(dues, default=None)

    def handle_timer(self, *, now: float) -> None:
        for peer_key, n in list(self.neighbours.items()):
            if n.pull_due is None or now < n.pull_due:
                continue
            if n.pulling:
                n.pull_tries += 1
                if n.pull_tries >= PULL_TRIES:
                    self.counters["pull_unanswered"] += 1
                    n.pulling, n.solicited, n.pull_tries = False, 0, 0
                    n.pull_due = now + REPULL
                    continue
            self._pull(peer_key, n, now=now)

    # -- inside --------------------------------------------------------------------

    def _neighbour(self, peer_key: bytes) -> Neighbour:
        n = self.neighbours.get(peer_key)
        if n is None:
            n = self.neighbours[peer_key] = Neighbour()
            if len(self.neighbours) > MAX_NEIGHBOURS:
                self.neighbours.popitem(last=False)
                self.counters["neighbour_evicted"] += 1
        else:
            self.neighbours.move_to_end(peer_key)
        return n

    def _pull(self, peer_key: bytes, n: Neighbour, *, now: float) -> None:
        n.pulling, n.solicited = True, PULL_BATCH
        n.pull_due = now + PULL_RETRY
        self.counters["pull_sent"] += 1
        self.send(peer_key, RecordPull(n.epoch, n.cursor))

    def _push(self, peer_key: bytes, n: Neighbour, item: MutableItem) -> None:
        n.learn(item.key, item.seq)
        self.counters["push_sent"] += 1
        self.send(peer_key, RecordPush.of(item))

    def _spread(self, item: MutableItem, *, source: bytes | None) -> None:
        self._stamp(item)
        for peer_key, n in list(self.neighbours.items()):
            if peer_key != source and not n.knows(item.key, item.seq):
                self._push(peer_key, n, item)

    def _stamp(self, item: MutableItem) -> None:
        if self.order.get(item.key, (0, -1))[1] != item.seq:
            self.taken_count += 1
            self.order[item.key] = (self.taken_count, item.seq)

    def _sync_order(self, *, now: float) -> None:
        """Give records the cache took without us (the DHT, the disk) their place in
        the order, and drop the places of records it no longer holds."""
        self.cache.providers(region=None, now=now + self.wall_offset)  # expires the dead
        for known in self.cache.records.values():
            self._stamp(known.item)
        if self.own is not None:
            self._stamp(self.own)
        own = self.own.key if self.own is not None else None
        for key in [k for k in self.order if k not in self.cache.records and k != own]:
            del self.order[key]
