"""Gossip of node records between tidewire neighbours (docs/protocol/gossip.md).

Three control-channel messages, each behind the channel's usual header (b"TW",
version, type; channel.py), parsed here and registered in channel.py's type table:

    RECORD_PUSH  (16)  one node record as its four BEP 44 parts: the Ed25519 key (32),
                       seq (8, big-endian), signature (64), then the bencoded value
                       (1 to 1,000 bytes, the rest of the message). The salt is always
                       records.SALT and does not travel.
    RECORD_PULL  (17)  "send me what you took after `since`": the answerer's cache
                       epoch (8 bytes, zeros when unknown) and a cursor (8) into the
                       order in which it took records. A wrong epoch means "from the
                       start".
    RECORD_DONE  (18)  the answer's end: the answerer's epoch, the cursor to ask from
                       next time, and whether more records wait (1 byte, 0 or 1).

A push carries a whole record in one datagram rather than fragments: a record is at
most 1,000 bytes of value, so a push is at most 1,108 bytes, under MAX_SIZE (1,232
bytes: with the overlay's 48 bytes of IPv6 and UDP header, 1,280, the IPv6 minimum
MTU every tidewire link carries). The other control messages keep channel.MAX_SIZE.
Parsing only checks the shape; whether the record verifies is the cache's question
(node/core/discovery.py), asked before anything is used or passed on.
"""

from dataclasses import dataclass

from construct import Bytes, ConstructError, Flag, GreedyBytes, Int64ub, Struct

from ..dht.items import MAX_VALUE, MutableItem
from ..errors import RemoteProtocolError
from .records import SALT

RECORD_PUSH, RECORD_PULL, RECORD_DONE = 24, 25, 26  # routes.py has 16-20
MAX_SIZE = 1232
EPOCH_SIZE = 8
NO_EPOCH = bytes(EPOCH_SIZE)

_PUSH = Struct("key" / Bytes(32), "seq" / Int64ub, "sig" / Bytes(64), "value" / GreedyBytes)
_PULL = Struct("epoch" / Bytes(EPOCH_SIZE), "since" / Int64ub)
_DONE = Struct("epoch" / Bytes(EPOCH_SIZE), "next" / Int64ub, "more" / Flag)
_PUSH_FIXED = 32 + 8 + 64


@dataclass(frozen=True, slots=True)
class RecordPush:
    key: bytes
    seq: int
    sig: bytes
    value: bytes

    @classmethod
    def of(cls, item: MutableItem) -> "RecordPush":
        return cls(item.key, item.seq, item.sig, item.value)

    def item(self) -> MutableItem:
        return MutableItem(self.key, self.seq, self.value, self.sig, SALT)


@dataclass(frozen=True, slots=True)
class RecordPull:
    epoch: bytes
    since: int


@dataclass(frozen=True, slots=True)
class RecordDone:
    epoch: bytes
    next: int
    more: bool


GossipMessage = RecordPush | RecordPull | RecordDone


def build_push(msg: RecordPush) -> bytes:
    if not 0 < len(msg.value) <= MAX_VALUE:
        raise ValueError(f"a record value of {len(msg.value)} bytes (1 to {MAX_VALUE})")
    out: bytes = _PUSH.build({"key": msg.key, "seq": msg.seq, "sig": msg.sig, "value": msg.value})
    return out


def build_pull(msg: RecordPull) -> bytes:
    out: bytes = _PULL.build({"epoch": msg.epoch, "since": msg.since})
    return out


def build_done(msg: RecordDone) -> bytes:
    out: bytes = _DONE.build({"epoch": msg.epoch, "next": msg.next, "more": msg.more})
    return out


def parse_push(body: bytes) -> RecordPush:
    if not _PUSH_FIXED < len(body) <= _PUSH_FIXED + MAX_VALUE:
        raise RemoteProtocolError("control_size")
    p = _PUSH.parse(body)
    return RecordPush(p.key, p.seq, p.sig, p.value)


def parse_pull(body: bytes) -> RecordPull:
    if len(body) != _PULL.sizeof():
        raise RemoteProtocolError("control_size")
    p = _PULL.parse(body)
    return RecordPull(p.epoch, p.since)


def parse_done(body: bytes) -> RecordDone:
    if len(body) != EPOCH_SIZE + 8 + 1 or body[-1] > 1:
        raise RemoteProtocolError("control_size")
    try:
        p = _DONE.parse(body)
    except ConstructError:
        raise RemoteProtocolError("control_size") from None
    return RecordDone(p.epoch, p.next, bool(p.more))
