"""A Mainline DHT node, sans-IO: datagrams and `now` in; datagrams, events and a
deadline out.

The shell feeds every datagram to `receive` and sends what `datagrams()` hands back;
it calls `handle_timer` at `get_timer()`. Queries from others are answered here (BEP 5:
ping, find_node, get_peers, announce_peer; BEP 44: get, put); our own operations
(`bootstrap`, `lookup`, `announce`, `put`, `get_item`) run as iterative lookups and end
in an event. A datagram that does not parse, or an answer nobody asked for, is a
counted drop and changes nothing; so is a query over its source's rate or the node's
total (limits.py), which gets no answer at all.
"""

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import RemoteProtocolError
from . import krpc
from .bencode import Raw, Value
from .ids import ID_SIZE
from .items import (
    INVALID_SIGNATURE,
    MAX_VALUE,
    ItemError,
    MutableItem,
    immutable_target,
)
from .limits import QueryLimits
from .lookup import K, Lookup, State
from .server import Responder
from .storage import ItemStore, PeerStore, Tokens
from .table import RoutingTable

Address = krpc.Address

QUERY_TIMEOUT = 2.0
MAX_PENDING = 256
VERSION = b"TW\x00\x01"  # client version (BEP 20 style: two letters, two version bytes)


@dataclass(frozen=True, slots=True)
class LookupDone:
    op: int
    method: str
    target: bytes
    nodes: list[tuple[bytes, Address]]  # the nearest that answered
    peers: list[Address] = field(default_factory=list)
    item: MutableItem | None = None  # the newest valid mutable item found
    value: bytes | None = None  # an immutable item's value


@dataclass(frozen=True, slots=True)
class StoreDone:
    op: int
    method: str  # announce_peer or put
    target: bytes
    stored: int  # nodes that acknowledged
    errors: list[tuple[int, bytes]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RecordAnswer:
    """What a node at `addr` said of itself when asked with `tw_record` (tidewire's
    one KRPC extension): its own item, not yet verified, or None."""

    op: int
    addr: Address
    item: MutableItem | None


Event = LookupDone | StoreDone | RecordAnswer


@dataclass(slots=True)
class _Op:
    op: int
    lookup: Lookup
    then: str | None = None  # announce_peer or put after the lookup
    storing: bool = False
    port: int = 0
    item: MutableItem | None = None
    value: bytes | None = None  # an immutable value to put
    salt: bytes = b""
    acks: int = 0
    waiting: int = 0
    errors: list[tuple[int, bytes]] = field(default_factory=list)
    best: MutableItem | None = None
    found_value: bytes | None = None


@dataclass(slots=True)
class _Pending:
    addr: Address
    node_id: bytes | None
    method: str
    deadline: float
    op: int | None


class DhtNode(Responder):
    def __init__(self, node_id: bytes, *, rng: Callable[[int], bytes], now: float) -> None:
        if len(node_id) != ID_SIZE:
            raise ValueError("a node id is 20 bytes")
        self.id = node_id
        self.rng = rng
        self.table = RoutingTable(node_id, now=now)
        self.tokens = Tokens(rng(16), now=now)
        self.peers = PeerStore()
        self.items = ItemStore()
        self.pending: dict[bytes, _Pending] = {}
        self.ops: dict[int, _Op] = {}
        self.outbox: list[tuple[bytes, Address]] = []
        self.events: list[Event] = []
        self.drops: dict[str, int] = {}
        self.limits = QueryLimits()
        self.answered: dict[str, int] = {}
        self.own_record: MutableItem | None = None
        self.seen_as: dict[str, int] = {}  # our address as responders saw it (BEP 42's ip)
        self._tids = itertools.count(1)
        self._ops = itertools.count(1)

    # -- the shell's side ---------------------------------------------------------

    def datagrams(self) -> list[tuple[bytes, Address]]:
        out, self.outbox = self.outbox, []
        return out

    def take_events(self) -> list[Event]:
        out, self.events = self.events, []
        return out

    def get_timer(self) -> float:
        deadlines = [p.deadline for p in self.pending.values()]
        return min([*deadlines, self.tokens.due(), self.table.next_refresh()])

    def handle_timer(self, *, now: float) -> None:
        for t, p in list(self.pending.items()):
            if p.deadline <= now:
                del self.pending[t]
                self._failed(p, now)
        if now >= self.tokens.due():
            self.tokens.rotate(self.rng(16), now=now)
        for lo, hi in self.table.stale_buckets(now=now):
            self.table.refreshed(lo, now=now)
            span = hi - lo
            target = (lo + int.from_bytes(self.rng(ID_SIZE), "big") % span).to_bytes(ID_SIZE, "big")
            self.lookup("find_node", target, now=now)

    def receive(self, data: bytes, addr: Address, *, now: float) -> None:
        try:
            msg = krpc.parse(data)
            if isinstance(msg, krpc.Query):
                refused = self.limits.refusal(addr[0], now=now)
                if refused is not None:
                    raise RemoteProtocolError(refused)
                self._on_query(msg, addr, now)
            else:
                self._on_answer(msg, addr, now)
        except RemoteProtocolError as exc:
            self.drops[exc.reason] = self.drops.get(exc.reason, 0) + 1

    # -- our operations -----------------------------------------------------------

    def bootstrap(self, addrs: list[Address], *, now: float) -> int:
        """Ask the given addresses for the nodes nearest our id, then look it up."""
        op = _Op(next(self._ops), Lookup(self.id, "find_node"))
        self.ops[op.op] = op
        for addr in addrs:
            self._query(addr, None, "find_node", {"target": self.id}, now, op.op)
        return self._start(op, now)

    def lookup(self, method: str, target: bytes, *, now: float) -> int:
        return self._start(_Op(next(self._ops), Lookup(target, method)), now)

    def announce(self, info_hash: bytes, port: int, *, now: float) -> int:
        op = _Op(next(self._ops), Lookup(info_hash, "get_peers"), then="announce_peer", port=port)
        return self._start(op, now)

    def put(self, item: MutableItem, *, now: float) -> int:
        item.check()
        op = _Op(next(self._ops), Lookup(item.target, "get"), then="put", item=item)
        return self._start(op, now)

    def put_immutable(self, value: bytes, *, now: float) -> int:
        if len(value) > MAX_VALUE:
            raise ValueError(f"a value of {len(value)} bytes; BEP 44 allows {MAX_VALUE}")
        target = immutable_target(value)
        op = _Op(next(self._ops), Lookup(target, "get"), then="put", value=value)
        return self._start(op, now)

    def get_item(self, target: bytes, *, salt: bytes = b"", now: float) -> int:
        return self._start(_Op(next(self._ops), Lookup(target, "get"), salt=salt), now)

    def fetch_record(self, addr: Address, *, now: float) -> int:
        """Ask the node at `addr` for its own record (a provider found by get_peers)."""
        op = next(self._ops)
        self._query(addr, None, "tw_record", {}, now, op)
        if not any(p.op == op for p in self.pending.values()):  # over the query budget
            self.events.append(RecordAnswer(op, addr, None))
        return op

    def _start(self, op: _Op, now: float) -> int:
        self.ops[op.op] = op
        seeds = self.table.closest(op.lookup.target, 2 * K)
        op.lookup.add([(n.id, n.addr) for n in seeds])
        self._advance(op, now)
        return op.op

    def _advance(self, op: _Op, now: float) -> None:
        lk = op.lookup
        if not op.storing:
            key = "target" if lk.method in ("find_node", "get") else "info_hash"
            for c in lk.next_queries():
                self._query(c.addr, c.id, lk.method, {key: lk.target}, now, op.op)
        if not lk.done or op.waiting or any(p.op == op.op for p in self.pending.values()):
            return
        if op.then is None:
            self._finish_lookup(op)
        elif not op.storing:
            self._store(op, now)
        else:
            self._finish_store(op)

    def _finish_lookup(self, op: _Op) -> None:
        del self.ops[op.op]
        lk = op.lookup
        nodes = [(c.id, c.addr) for c in lk.nearest_answered()]
        peers = sorted(lk.peers)
        self.events.append(
            LookupDone(op.op, lk.method, lk.target, nodes, peers, op.best, op.found_value)
        )

    def _store(self, op: _Op, now: float) -> None:
        op.storing, method = True, op.then
        args: dict[str, object]
        for c in op.lookup.with_tokens():
            assert c.token is not None
            if method == "announce_peer":
                args = {"info_hash": op.lookup.target, "port": op.port, "token": c.token}
            elif op.item is not None:
                it = op.item
                args = {"k": it.key, "seq": it.seq, "sig": it.sig, "token": c.token}
                args["v"] = Raw(it.value)
                if it.salt:
                    args["salt"] = it.salt
            else:
                assert op.value is not None
                args = {"v": Raw(op.value), "token": c.token}
            self._query(c.addr, c.id, method or "", args, now, op.op)
            op.waiting += 1
        if not op.waiting:
            self._finish_store(op)

    def _finish_store(self, op: _Op) -> None:
        self.ops.pop(op.op, None)
        method = op.then or ""
        self.events.append(StoreDone(op.op, method, op.lookup.target, op.acks, op.errors))

    # -- queries out and answers in -----------------------------------------------

    def _query(
        self,
        addr: Address,
        node_id: bytes | None,
        method: str,
        args: dict[str, object],
        now: float,
        op: int | None,
    ) -> None:
        if len(self.pending) >= MAX_PENDING:
            self.drops["query_budget"] = self.drops.get("query_budget", 0) + 1
            if op is not None and node_id is not None and op in self.ops:
                self.ops[op].lookup.failed(node_id)
            return
        t = next(self._tids).to_bytes(4, "big").lstrip(b"\0") or b"\0"
        while t in self.pending:
            t = next(self._tids).to_bytes(4, "big").lstrip(b"\0")
        self.pending[t] = _Pending(addr, node_id, method, now + QUERY_TIMEOUT, op)
        self.outbox.append((krpc.query(t, method, self.id, **args), addr))

    def _failed(self, p: _Pending, now: float) -> None:
        if p.node_id is not None:
            self.table.failed(p.node_id)
        if p.method == "tw_record" and p.op is not None:
            self.events.append(RecordAnswer(p.op, p.addr, None))
            return
        op = self.ops.get(p.op) if p.op is not None else None
        if op is None:
            return
        if p.method in ("announce_peer", "put"):
            op.waiting -= 1
        elif p.node_id is not None:
            op.lookup.failed(p.node_id)
        self._advance(op, now)

    def _on_answer(self, msg: krpc.Response | krpc.Error, addr: Address, now: float) -> None:
        p = self.pending.get(msg.t)
        if p is None or p.addr != addr:
            raise RemoteProtocolError("krpc_unexpected_answer")
        if isinstance(msg, krpc.Response) and p.node_id not in (None, msg.sender):
            raise RemoteProtocolError("krpc_wrong_responder")
        del self.pending[msg.t]
        if p.method == "tw_record" and p.op is not None:
            self._record_answer(p.op, msg, addr)
            return
        op = self.ops.get(p.op) if p.op is not None else None
        if isinstance(msg, krpc.Error):
            if op is not None and p.method in ("announce_peer", "put"):
                op.waiting -= 1
                op.errors.append((msg.code, msg.message))
            elif op is not None and p.node_id is not None:
                op.lookup.failed(p.node_id)
            if op is not None:
                self._advance(op, now)
            return
        self.table.heard(msg.sender, addr, now=now, replied=True)
        if msg.ip is not None and (msg.ip[0] in self.seen_as or len(self.seen_as) < 64):
            self.seen_as[msg.ip[0]] = self.seen_as.get(msg.ip[0], 0) + 1
        if op is None:
            return
        if p.method in ("announce_peer", "put"):
            op.waiting -= 1
            op.acks += 1
            self._advance(op, now)
            return
        lk = op.lookup
        if p.node_id is None:  # a bootstrap address: now we know its id
            lk.add([(msg.sender, addr)])
            lk.candidates[msg.sender].state = State.ASKED
        r = msg.values
        nodes = krpc.decode_nodes(r[b"nodes"]) if b"nodes" in r else []
        nodes += krpc.decode_nodes(r[b"nodes6"], 38) if b"nodes6" in r else []
        lk.add(nodes)
        token = r.get(b"token")
        lk.answered(msg.sender, token=token if isinstance(token, bytes) else None)
        if lk.method == "get_peers" and b"values" in r:
            lk.peers.update(krpc.decode_peers(r[b"values"]))
        if lk.method == "get" and msg.raw_value is not None:
            self._take_item(op, r, msg.raw_value)
        self._advance(op, now)

    def _record_answer(self, op: int, msg: krpc.Response | krpc.Error, addr: Address) -> None:
        item = None
        if isinstance(msg, krpc.Response) and msg.raw_value is not None:
            r = msg.values
            k, seq, sig, salt = r.get(b"k"), r.get(b"seq"), r.get(b"sig"), r.get(b"salt", b"")
            if (
                isinstance(k, bytes)
                and isinstance(seq, int)
                and isinstance(sig, bytes)
                and isinstance(salt, bytes)
            ):
                item = MutableItem(k, seq, msg.raw_value, sig, salt)
        self.events.append(RecordAnswer(op, addr, item))

    def _take_item(self, op: _Op, r: dict[bytes, Value], raw: bytes) -> None:
        target = op.lookup.target
        if b"k" not in r:
            if immutable_target(raw) == target:
                op.found_value = raw
            else:
                self.drops["item_wrong_hash"] = self.drops.get("item_wrong_hash", 0) + 1
            return
        k, seq, sig = r.get(b"k"), r.get(b"seq"), r.get(b"sig")
        if not (isinstance(k, bytes) and isinstance(seq, int) and isinstance(sig, bytes)):
            self.drops["item_malformed"] = self.drops.get("item_malformed", 0) + 1
            return
        item = MutableItem(k, seq, raw, sig, op.salt)
        try:
            if item.target != target:
                raise ItemError(INVALID_SIGNATURE, "key and salt do not hash to the target")
            item.check()
        except ItemError as exc:
            self.drops[exc.reason] = self.drops.get(exc.reason, 0) + 1
            return
        if op.best is None or item.seq > op.best.seq:
            op.best = item
