"""What a node knows of other nodes: verified node records, and where to look for more.

`RecordCache` holds the newest verified record per record key (the node's Ed25519
key), bounded: a record that fails verification, or whose sequence is not above one
already seen for its key (a replay of an old record), is refused and counted, and when
the cache is full the record that expires first gives way. Records come from the DHT,
from gossip and from the state directory; all take the same door (`offer`).

A record's signature binds its X25519 key to its Ed25519 key one way only: anyone can
sign a record naming another node's link key (protocol/control/records.py). Once a
session with that link key shows which Ed25519 key the node really holds (its signed
invoices name it), `confirm` drops every record that names the link key under another
record key, and refuses such records from then on.

A provider announces itself on a rendezvous info-hash per region and UTC day, so a
client that knows only a region tag finds today's providers with one get_peers lookup,
and yesterday's announces fade by themselves.
"""

import datetime
from dataclasses import dataclass

from tidewire.protocol.control.records import NodeRecord, RecordError, verify
from tidewire.protocol.dht.items import MutableItem, sha1

MAX_RECORDS = 1000
MAX_CONFIRMED = 1000


def rendezvous(region: str, unix_seconds: float) -> bytes:
    """The info-hash providers of `region` announce on during the UTC day that holds
    the moment."""
    day = datetime.datetime.fromtimestamp(unix_seconds, tz=datetime.UTC).date().isoformat()
    return sha1(b"tidewire/v1/rendezvous/%s/%s" % (region.encode(), day.encode()))


@dataclass(frozen=True, slots=True)
class Known:
    record: NodeRecord
    item: MutableItem
    source: str  # dht, gossip or disk


class RecordCache:
    def __init__(self, *, limit: int = MAX_RECORDS) -> None:
        self.limit = limit
        self.records: dict[bytes, Known] = {}
        self.seen: dict[bytes, int] = {}  # the highest sequence seen per key, bounded too
        self.confirmed: dict[bytes, bytes] = {}  # X25519 key -> the Ed25519 key it holds
        self.counters: dict[str, int] = {}

    def offer(self, item: MutableItem, *, source: str, now: float) -> NodeRecord | None:
        """Take a record if it verifies and is newer than what is known; None if not."""
        try:
            record = verify(item, now=now)
        except RecordError:
            self._count("invalid")
            return None
        if self.confirmed.get(record.public_key, item.key) != item.key:
            self._count("unbound")
            return None
        if item.seq <= self.seen.get(item.key, -1):
            self._count("stale")
            return None
        self._expire(now)
        if item.key not in self.records and len(self.records) >= self.limit:
            first = min(self.records, key=lambda k: self.records[k].record.expiry)
            del self.records[first]
            self._count("evicted")
        self.records[item.key] = Known(record, item, source)
        self.seen[item.key] = item.seq
        if len(self.seen) > 2 * self.limit:
            for k in [k for k in self.seen if k not in self.records][: self.limit]:
                del self.seen[k]
        self._count("taken_" + source)
        return record

    def confirm(self, public_key: bytes, record_key: bytes) -> None:
        """A session showed that the node with link key `public_key` holds the Ed25519
        key `record_key`: records naming that link key under another key are forgeries."""
        if public_key not in self.confirmed and len(self.confirmed) >= MAX_CONFIRMED:
            del self.confirmed[next(iter(self.confirmed))]
        self.confirmed[public_key] = record_key
        for k in [k for k, x in self.records.items() if x.record.public_key == public_key]:
            if k != record_key:
                del self.records[k]
                self._count("unbound")

    def _expire(self, now: float) -> None:
        for k in [k for k, x in self.records.items() if x.record.expiry <= now]:
            del self.records[k]
            self._count("expired")

    def providers(self, *, region: str | None, now: float) -> list[Known]:
        """Live provider records (of a region, if given), least loaded first."""
        self._expire(now)
        out = [
            x
            for x in self.records.values()
            if "provider" in x.record.roles and (region is None or x.record.region == region)
        ]
        return sorted(out, key=lambda x: (x.record.load, x.record.price, x.record.record_key))

    def record_of(self, public_key: bytes, *, now: float) -> NodeRecord | None:
        """The newest live record naming the link key `public_key` (a relay's terms)."""
        self._expire(now)
        named = [x for x in self.records.values() if x.record.public_key == public_key]
        return max(named, key=lambda x: x.item.seq).record if named else None

    def _count(self, what: str) -> None:
        self.counters[what] = self.counters.get(what, 0) + 1
