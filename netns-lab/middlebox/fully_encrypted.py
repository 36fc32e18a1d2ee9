"""The lab censor's TCP first-packet classifier, without I/O: the published rules by which
the Great Firewall of China flags fully encrypted traffic, reading frames, writing resets.

    verdict(payload)          -> Verdict(block, rule): the rules of Algorithm 1 in Wu et al.,
                                 "How the Great Firewall of China Detects and Blocks Fully
                                 Encrypted Traffic", USENIX Security 2023
    parse_frame(frame)        -> Segment | None: an Ethernet IPv4 TCP frame, None otherwise
    reset(src, dst, ...)      -> an IPv4 TCP RST, checksums filled in
    Classifier().segment(s)   -> Action: what the tap does about one segment it saw

The first data packet a client sends on a connection is exempt (not blocked) if any of:
Ex1 the average number of set bits per byte is <= 3.4 or >= 4.6 (random data is near 4);
Ex2 its first six bytes are printable ASCII (0x20-0x7e); Ex3 more than half its bytes
are printable; Ex4 it holds more than 20 contiguous printable bytes; Ex5 it starts like
TLS (a record of type 0x16 or 0x17, version 0x03 0x00-0x09) or an HTTP request. Anything
else is flagged. The real censor applies this to a share of connections only (about a
quarter, to some address ranges); the lab's applies it to every one, so tests are
deterministic.
"""

import re
import struct
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from tidewire.node.core.checksum import checksum

POPCOUNT_LOW, POPCOUNT_HIGH = 3.4, 4.6  # Ex1
PREFIX, SHARE, RUN = 6, 0.5, 20  # Ex2, Ex3, Ex4
_TLS = re.compile(rb"[\x16\x17]\x03[\x00-\x09]")  # Ex5
_HTTP = re.compile(rb"(GET|PUT|POST|HEAD|DELETE|OPTIONS|PATCH|CONNECT|TRACE) ")  # Ex5
_PRINTABLE_RUN = re.compile(rb"[\x20-\x7e]{%d,}" % (RUN + 1))
_BITS = bytes(bin(i).count("1") for i in range(256))


@dataclass(frozen=True)
class Verdict:
    block: bool
    rule: str  # "Ex1".."Ex5" for an exemption, "fully-encrypted" for a block


def printable(byte: int) -> bool:
    return 0x20 <= byte <= 0x7E


def verdict(payload: bytes) -> Verdict:
    """The classifier's judgement of a connection's first data packet (not empty)."""
    bits = sum(_BITS[b] for b in payload) / len(payload)
    if bits <= POPCOUNT_LOW or bits >= POPCOUNT_HIGH:
        return Verdict(False, "Ex1")
    if len(payload) >= PREFIX and all(printable(b) for b in payload[:PREFIX]):
        return Verdict(False, "Ex2")
    if sum(1 for b in payload if printable(b)) > SHARE * len(payload):
        return Verdict(False, "Ex3")
    if _PRINTABLE_RUN.search(payload):
        return Verdict(False, "Ex4")
    if _TLS.match(payload) or _HTTP.match(payload):
        return Verdict(False, "Ex5")
    return Verdict(True, "fully-encrypted")


# -- frames ----------------------------------------------------------------------------

SYN, RST, ACK = 0x02, 0x04, 0x10
ETH_IPV4 = b"\x08\x00"
_IP = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIBBHHH")


@dataclass(frozen=True)
class Segment:
    src: str
    dst: str
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    payload: bytes


def _addr(raw: bytes) -> str:
    return ".".join(str(b) for b in raw)


def parse_frame(frame: bytes) -> Segment | None:
    """An Ethernet frame carrying IPv4 TCP (no fragment), or None for anything else,
    truncated or inconsistent."""
    if len(frame) < 14 + _IP.size or frame[12:14] != ETH_IPV4:
        return None
    ip = frame[14:]
    ver_ihl, _, total, _, frag, _, proto, _, src, dst = _IP.unpack_from(ip)
    ihl = (ver_ihl & 0x0F) * 4
    if ver_ihl >> 4 != 4 or ihl < 20 or proto != 6 or frag & 0x3FFF:  # MF or an offset
        return None
    if total < ihl + _TCP.size or total > len(ip):
        return None
    sport, dport, seq, ack, off, flags, _, _, _ = _TCP.unpack_from(ip, ihl)
    doff = (off >> 4) * 4
    if doff < _TCP.size or ihl + doff > total:
        return None
    payload = ip[ihl + doff : total]
    return Segment(_addr(src), _addr(dst), sport, dport, seq, ack, flags, payload)


def _raw(addr: str) -> bytes:
    return bytes(int(part) for part in addr.split("."))


def reset(src: str, dst: str, sport: int, dport: int, seq: int, ack: int = 0) -> bytes:
    """An IPv4 packet with a TCP RST from src:sport to dst:dport at sequence `seq` (with
    ACK set when `ack` is given), as an on-path censor injects one."""
    flags = RST | (ACK if ack else 0)
    tcp = _TCP.pack(sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 0, 0, 0)
    pseudo = _raw(src) + _raw(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    header = _IP.pack(0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, _raw(src), _raw(dst))
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + tcp


# -- connections ------------------------------------------------------------------------

TRACKED = 4096  # connections awaiting their first data packet, or flagged; oldest forgotten
Key = tuple[str, int, str, int]  # src, sport, dst, dport


@dataclass
class Action:
    resets: list[tuple[bytes, str]] = field(default_factory=list)  # (packet, its destination)
    residual: tuple[str, int] | None = None  # a server ip:port to block
    judgement: dict[str, Any] | None = None  # a first data packet judged


def _remember(table: OrderedDict[Key, None], key: Key) -> None:
    table[key] = None
    while len(table) > TRACKED:
        table.popitem(last=False)


class Classifier:
    """Connections from their SYN to their first data packet from the client, judged by
    `verdict`. A flagged one is reset towards both ends (the client at the sequence it
    expects from the server, the server just past the flagged data) and its server goes
    to residual blocking; each data segment either end still sends on it gets its
    receiver reset just past it, so a reply that overtook the first RST cannot save it."""

    def __init__(self) -> None:
        self.waiting: OrderedDict[Key, None] = OrderedDict()
        self.flagged: OrderedDict[Key, None] = OrderedDict()  # both directions' keys

    def segment(self, s: Segment) -> Action:
        key = (s.src, s.sport, s.dst, s.dport)
        if key in self.flagged:
            if s.payload and not s.flags & RST:
                after = reset(s.src, s.dst, s.sport, s.dport, seq=s.seq + len(s.payload))
                return Action(resets=[(after, s.dst)])
        elif s.flags & SYN and not s.flags & ACK:
            _remember(self.waiting, key)
        elif s.flags & RST:
            self.waiting.pop(key, None)
        elif s.payload and key in self.waiting:
            del self.waiting[key]
            return self._judge(s)
        return Action()

    def _judge(self, s: Segment) -> Action:
        judged = verdict(s.payload)
        action = Action(
            judgement={
                "client": f"{s.src}:{s.sport}",
                "server": f"{s.dst}:{s.dport}",
                "verdict": "block" if judged.block else "exempt",
                "rule": judged.rule,
                "length": len(s.payload),
            }
        )
        if judged.block:
            _remember(self.flagged, (s.src, s.sport, s.dst, s.dport))
            _remember(self.flagged, (s.dst, s.dport, s.src, s.sport))
            action.resets = [
                (reset(s.dst, s.src, s.dport, s.sport, seq=s.ack), s.src),
                (reset(s.src, s.dst, s.sport, s.dport, seq=s.seq + len(s.payload)), s.dst),
            ]
            action.residual = (s.dst, s.dport)
        return action
