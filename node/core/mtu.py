"""What a peer's path carries: the largest inner packet, MSS clamping, "too big" answers.

A path carries inner packets up to the link's MTU (the TUN's, which is what a plain
UDP datagram of WireGuard carries over the outer link) less what its transport adds
beyond WireGuard's own framing (`overheads`, by transport name). `carry(transport)` is
that size; `smallest` the least of them, so a packet within it skips the lookup.

Two things follow from it (DESIGN.md, "Congestion control and queues": MTU is managed):

- MSS clamping (mss.py): a TCP SYN or SYN-ACK crossing the tunnel in either direction
  has its MSS option lowered to what fills `carry` (mss.mss_for), so neither end sends
  segments the path cannot take. `is_syn` is the data path's test per TCP packet (the
  SYN bit where an unextended header has it); `clamp` leaves the option walk to mss.py.
- An inner packet larger than `carry` is not sent: the sender gets an ICMP
  "fragmentation needed" (IPv4 with DF) or "packet too big" (IPv6) from the node's
  tunnel address (icmp.py) written into the TUN, so its path MTU discovery learns the
  size at once instead of timing out on a silent drop. The answers are rate-limited by
  one token bucket (Linux's net.ipv4.icmp_msgs_per_sec and icmp_msgs_burst defaults),
  so a flood of large packets costs at most ERRORS_PER_SECOND answers.
"""

from collections import Counter

from . import icmp
from .mss import clamp_mss, mss_for
from .packet import TCP

DEFAULT_MTU = 1420  # the link's MTU when none is configured (node/config's default)
ERRORS_PER_SECOND = 1000.0  # Linux's net.ipv4.icmp_msgs_per_sec
ERRORS_BURST = 50  # Linux's net.ipv4.icmp_msgs_burst
SYN = 0x02

Packet = bytes | bytearray | memoryview


def is_syn(packet: bytes) -> bool:
    """Whether a TCP packet (the caller checked the protocol) may be a SYN or SYN-ACK: the
    SYN bit where an IPv4 or unextended IPv6 header puts it; True for an IPv6 packet with
    extension headers, whose TCP header only mss.py's walk finds. Per TCP packet: cheap."""
    b0 = packet[0]
    at = ((b0 & 0x0F) << 2) + 13 if b0 < 0x60 else 53 if packet[6] == TCP else 0
    return not at or (len(packet) > at and packet[at] & SYN != 0)


class PathMtu:
    def __init__(
        self,
        *,
        mtu: int,
        overheads: dict[str, int],
        router4: bytes | None = None,
        router6: bytes | None = None,
        rate: float = ERRORS_PER_SECOND,
        burst: int = ERRORS_BURST,
        counters: Counter[str] | None = None,
    ) -> None:
        self.mtu = mtu
        self.carries = {name: mtu - extra for name, extra in overheads.items()}
        self.smallest = min(self.carries.values(), default=mtu)
        self.router4 = router4
        self.router6 = router6
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.refilled = float("-inf")
        # mss_clamped: SYNs whose MSS was lowered; icmp_too_big_sent: answers written;
        # icmp_too_big_limited: answers the rate limit held back
        self.counters: Counter[str] = Counter() if counters is None else counters

    def set_routers(self, addresses: list[bytes]) -> None:
        """The node's tunnel addresses (packed, 4 or 16 bytes): the first of each version
        is where the "too big" answers of that version come from."""
        self.router4 = next((a for a in addresses if len(a) == 4), None)
        self.router6 = next((a for a in addresses if len(a) == 16), None)

    def carry(self, transport: str | None) -> int:
        """The largest inner packet a path of this transport carries."""
        return self.mtu if transport is None else self.carries.get(transport, self.mtu)

    def clamp(self, packet: bytes, version: int, carry: int) -> bytes:
        """A SYN with its MSS lowered to fill `carry` (the same object if it asks for no
        more, or is no SYN after all: `is_syn` lets an extended IPv6 header through)."""
        out = clamp_mss(packet, mss_for(carry, version))
        if out is packet:
            return packet
        self.counters["mss_clamped"] += 1
        return bytes(out)

    def too_big(self, packet: Packet, carry: int, *, now: float) -> bytes | None:
        """The ICMP answer to a packet larger than `carry`, or None (not one to answer,
        no tunnel address of its version, or the rate limit)."""
        if self.tokens < self.burst:
            self.tokens = min(self.burst, self.tokens + (now - self.refilled) * self.rate)
        self.refilled = now
        if self.tokens < 1.0:
            self.counters["icmp_too_big_limited"] += 1
            return None
        mtu = max(carry, icmp.MIN_V6_MTU) if packet[0] >> 4 == 6 else max(carry, icmp.MIN_V4_MTU)
        answer = icmp.too_big(packet, mtu=mtu, router4=self.router4, router6=self.router6)
        if answer is not None:
            self.tokens -= 1.0
            self.counters["icmp_too_big_sent"] += 1
        return answer
