"""Answering other nodes' queries (BEP 5: ping, find_node, get_peers, announce_peer;
BEP 44: get, put).

A part of `DhtNode` (node.py), apart because it is what strangers drive: every
argument is checked here before it touches a store, a bad one gets KRPC error 203 and
an item refused by BEP 44's rules gets that rule's code; a write needs a token we gave
the same address. Nodes that send queries are heard by the routing table (unless they
say they are read-only, BEP 43), but not trusted until they answer ours.
"""

from . import krpc
from .bencode import Raw, Value
from .ids import ID_SIZE
from .items import MAX_SALT, MAX_VALUE, SALT_TOO_BIG, VALUE_TOO_BIG, ItemError, MutableItem
from .storage import ItemStore, PeerStore, Tokens
from .table import RoutingTable

Address = krpc.Address


class Responder:
    # the node's state this part works on (node.py sets it up)
    id: bytes
    table: RoutingTable
    tokens: Tokens
    peers: PeerStore
    items: ItemStore
    outbox: list[tuple[bytes, Address]]
    answered: dict[str, int]
    own_record: MutableItem | None  # what `tw_record` answers (a provider's node record)

    def _on_query(self, q: krpc.Query, addr: Address, now: float) -> None:
        if not q.read_only:
            self.table.heard(q.sender, addr, now=now, replied=False)
        name = q.q.decode("ascii", "replace")
        try:
            values = self._answer(q, addr, now)
        except ItemError as exc:
            self.outbox.append((krpc.error(q.t, exc.code, exc.detail), addr))
            return
        except _BadArgs as exc:
            self.outbox.append((krpc.error(q.t, krpc.PROTOCOL_ERROR, str(exc)), addr))
            return
        if values is None:
            self.outbox.append((krpc.error(q.t, krpc.METHOD_UNKNOWN, "method unknown"), addr))
            return
        self.answered[name] = self.answered.get(name, 0) + 1
        self.outbox.append((krpc.response(q.t, self.id, addr, **values), addr))

    def _answer(self, q: krpc.Query, addr: Address, now: float) -> dict[str, object] | None:
        a = q.args
        if q.q == b"ping":
            return {}
        if q.q == b"find_node":
            return {"nodes": self._nodes_near(_arg_id(a, b"target"))}
        if q.q == b"get_peers":
            info_hash = _arg_id(a, b"info_hash")
            out: dict[str, object] = {"token": self.tokens.make(addr[0])}
            peers = self.peers.get(info_hash, now=now)
            if peers:
                out["values"] = [krpc.encode_address(p) for p in peers]
            out["nodes"] = self._nodes_near(info_hash)
            return out
        if q.q == b"announce_peer":
            info_hash = _arg_id(a, b"info_hash")
            self._need_token(a, addr)
            port = a.get(b"port")
            if a.get(b"implied_port") == 1:
                port = addr[1]
            if not isinstance(port, int) or not 0 < port < 65536:
                raise _BadArgs("port: an integer from 1 to 65535 is required")
            self.peers.announce(info_hash, (addr[0], port), now=now)
            return {}
        if q.q == b"get":
            return self._answer_get(a, addr, now)
        if q.q == b"put":
            self._answer_put(q, addr, now)
            return {}
        if q.q == b"tw_record" and self.own_record is not None:
            it = self.own_record
            return {"k": it.key, "seq": it.seq, "sig": it.sig, "salt": it.salt, "v": Raw(it.value)}
        return None

    def _answer_get(self, a: dict[bytes, Value], addr: Address, now: float) -> dict[str, object]:
        target = _arg_id(a, b"target")
        out: dict[str, object] = {"token": self.tokens.make(addr[0])}
        out["nodes"] = self._nodes_near(target)
        stored = self.items.get(target, now=now)
        if stored is not None:
            if stored.item is None:
                out["v"] = Raw(stored.value)
            else:
                it = stored.item
                out["seq"] = it.seq
                newer = a.get(b"seq")
                if not isinstance(newer, int) or it.seq > newer:
                    out.update(k=it.key, sig=it.sig, v=Raw(it.value))
        return out

    def _answer_put(self, q: krpc.Query, addr: Address, now: float) -> None:
        a = q.args
        self._need_token(a, addr)
        raw = q.raw_value
        if raw is None:
            raise _BadArgs("v: a value is required")
        if len(raw) > MAX_VALUE:
            raise ItemError(VALUE_TOO_BIG, "message (v field) too big")
        if b"k" not in a:
            self.items.put_immutable(raw, now=now)
            return
        k, seq, sig, salt = a.get(b"k"), a.get(b"seq"), a.get(b"sig"), a.get(b"salt", b"")
        if not (isinstance(k, bytes) and isinstance(seq, int) and isinstance(sig, bytes)):
            raise _BadArgs("k, seq and sig are required for a mutable put")
        if not isinstance(salt, bytes):
            raise _BadArgs("salt must be a string")
        if len(salt) > MAX_SALT:
            raise ItemError(SALT_TOO_BIG, "salt (salt field) too big")
        cas = a.get(b"cas")
        self.items.put_mutable(
            MutableItem(k, seq, raw, sig, salt),
            cas=cas if isinstance(cas, int) else None,
            now=now,
        )

    def _need_token(self, a: dict[bytes, Value], addr: Address) -> None:
        token = a.get(b"token")
        if not isinstance(token, bytes) or not self.tokens.valid(token, addr[0]):
            raise _BadArgs("bad token")

    def _nodes_near(self, target: bytes) -> bytes:
        near = [n for n in self.table.closest(target) if ":" not in n.addr[0]]
        return krpc.encode_nodes([(n.id, n.addr) for n in near])


class _BadArgs(Exception):
    pass


def _arg_id(a: dict[bytes, Value], key: bytes) -> bytes:
    v = a.get(key)
    if not isinstance(v, bytes) or len(v) != ID_SIZE:
        raise _BadArgs(f"{key.decode()}: a 20-byte id is required")
    return v
