"""Cryptokey routing: allowed IPs to peers by longest prefix (whitepaper section 2).

Outbound, a packet goes to the peer whose allowed IPs hold its destination by
the longest prefix; inbound, a decrypted packet is accepted only if its source
lies in the sending peer's allowed IPs. Prefixes are kept per family as one dict
per prefix length (network integer to value); a lookup masks the address once
per distinct length present, longest first, so it costs a few dict probes.
"""

from collections.abc import Iterator
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Generic, TypeVar

V = TypeVar("V")
Network = IPv4Network | IPv6Network


class _Family(Generic[V]):
    def __init__(self, bits: int) -> None:
        self.bits = bits
        self.by_length: dict[int, dict[int, V]] = {}
        self.lengths: list[int] = []  # descending

    def insert(self, net: int, length: int, value: V) -> None:
        table = self.by_length.get(length)
        if table is None:
            table = self.by_length[length] = {}
            self.lengths = sorted(self.by_length, reverse=True)
        table[net] = value

    def remove_value(self, value: V) -> None:
        for length in list(self.by_length):
            table = self.by_length[length]
            for net in [n for n, v in table.items() if v is value]:
                del table[net]
            if not table:
                del self.by_length[length]
        self.lengths = sorted(self.by_length, reverse=True)

    def lookup(self, addr: int) -> V | None:
        bits = self.bits
        for length in self.lengths:
            net = (addr >> (bits - length)) << (bits - length) if length else 0
            value = self.by_length[length].get(net)
            if value is not None:
                return value
        return None


class AllowedIPs(Generic[V]):
    """Prefix table for IPv4 and IPv6; a prefix belongs to at most one value (the last set)."""

    def __init__(self) -> None:
        self.v4: _Family[V] = _Family(32)
        self.v6: _Family[V] = _Family(128)

    def insert(self, prefix: str | Network, value: V) -> None:
        net = ip_network(prefix, strict=False) if isinstance(prefix, str) else prefix
        fam = self.v4 if net.version == 4 else self.v6
        fam.insert(int(net.network_address), net.prefixlen, value)

    def remove(self, value: V) -> None:
        self.v4.remove_value(value)
        self.v6.remove_value(value)

    def lookup_v4(self, addr: int) -> V | None:
        return self.v4.lookup(addr)

    def lookup_v6(self, addr: int) -> V | None:
        return self.v6.lookup(addr)

    def prefixes(self, value: V) -> Iterator[Network]:
        for fam, cls in ((self.v4, IPv4Network), (self.v6, IPv6Network)):
            for length in fam.lengths:
                for net, v in fam.by_length[length].items():
                    if v is value:
                        yield cls((net, length))
