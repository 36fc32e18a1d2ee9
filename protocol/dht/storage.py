"""What a DHT node keeps for others: write tokens, announced peers, stored items.

Tokens (BEP 5) prove a writer asked us first from the same address: a token is a hash
of a secret and the asker's IP; the secret changes every `TOKEN_ROTATE` seconds and
the previous one is still accepted, so a token lives 5 to 10 minutes. The secrets come
from the caller (the shell's randomness). Peers and items expire (BEP 5 and BEP 44
suggest 30 minutes and 2 hours) and both stores are bounded: when full, the entry
nearest to expiry gives way, and the refusal or eviction is counted.
"""

from dataclasses import dataclass

from .items import (
    CAS_MISMATCH,
    SEQ_TOO_LOW,
    ItemError,
    MutableItem,
    sha1,
)

Address = tuple[str, int]

TOKEN_ROTATE = 300.0
PEER_TTL = 30 * 60.0
ITEM_TTL = 2 * 3600.0
MAX_PEERS_PER_HASH = 100
MAX_HASHES = 2000
MAX_ITEMS = 2000
PEERS_PER_ANSWER = 50


class Tokens:
    def __init__(self, secret: bytes, *, now: float) -> None:
        self.secrets = [secret, secret]
        self.rotated = now

    def due(self) -> float:
        return self.rotated + TOKEN_ROTATE

    def rotate(self, secret: bytes, *, now: float) -> None:
        self.secrets = [secret, self.secrets[0]]
        self.rotated = now

    def make(self, ip: str) -> bytes:
        return sha1(self.secrets[0] + ip.encode())[:8]

    def valid(self, token: bytes, ip: str) -> bool:
        return any(sha1(s + ip.encode())[:8] == token for s in self.secrets)


class PeerStore:
    def __init__(self) -> None:
        self.peers: dict[bytes, dict[Address, float]] = {}  # info-hash -> peer -> expiry
        self.counters: dict[str, int] = {}

    def announce(self, info_hash: bytes, peer: Address, *, now: float) -> None:
        swarm = self.peers.get(info_hash)
        if swarm is None:
            if len(self.peers) >= MAX_HASHES:
                self._expire(now)
            if len(self.peers) >= MAX_HASHES:
                self.counters["hash_refused"] = self.counters.get("hash_refused", 0) + 1
                return
            swarm = self.peers[info_hash] = {}
        if peer not in swarm and len(swarm) >= MAX_PEERS_PER_HASH:
            oldest = min(swarm, key=lambda p: swarm[p])
            del swarm[oldest]
            self.counters["peer_evicted"] = self.counters.get("peer_evicted", 0) + 1
        swarm[peer] = now + PEER_TTL

    def get(self, info_hash: bytes, *, now: float) -> list[Address]:
        swarm = self.peers.get(info_hash, {})
        live = [p for p, exp in swarm.items() if exp > now]
        return live[-PEERS_PER_ANSWER:]

    def _expire(self, now: float) -> None:
        for h in list(self.peers):
            swarm = {p: e for p, e in self.peers[h].items() if e > now}
            if swarm:
                self.peers[h] = swarm
            else:
                del self.peers[h]


@dataclass(slots=True)
class Stored:
    value: bytes
    item: MutableItem | None  # None for an immutable item
    expiry: float


class ItemStore:
    def __init__(self) -> None:
        self.items: dict[bytes, Stored] = {}
        self.counters: dict[str, int] = {}

    def get(self, target: bytes, *, now: float) -> Stored | None:
        s = self.items.get(target)
        if s is None or s.expiry <= now:
            return None
        return s

    def put_immutable(self, value: bytes, *, now: float) -> bytes:
        target = sha1(value)
        self._store(target, Stored(value, None, now + ITEM_TTL), now)
        return target

    def put_mutable(self, item: MutableItem, *, cas: int | None, now: float) -> None:
        """Store a verified-by-the-caller-or-here item, or raise ItemError with BEP 44's
        code: 301 if `cas` does not match what is stored, 302 for an older sequence."""
        item.check()
        target = item.target
        old = self.get(target, now=now)
        if old is not None and old.item is not None:
            if cas is not None and cas != old.item.seq:
                raise ItemError(CAS_MISMATCH, "the stored sequence number is another")
            if item.seq < old.item.seq:
                raise ItemError(SEQ_TOO_LOW, "an older sequence number than the stored one")
            if item.seq == old.item.seq and item.value != old.value:
                raise ItemError(SEQ_TOO_LOW, "the same sequence number with another value")
        self._store(target, Stored(item.value, item, now + ITEM_TTL), now)

    def _store(self, target: bytes, s: Stored, now: float) -> None:
        if target not in self.items and len(self.items) >= MAX_ITEMS:
            for t in [t for t, x in self.items.items() if x.expiry <= now]:
                del self.items[t]
            if len(self.items) >= MAX_ITEMS:
                first = min(self.items, key=lambda t: self.items[t].expiry)
                del self.items[first]
                self.counters["item_evicted"] = self.counters.get("item_evicted", 0) + 1
        self.items[target] = s
