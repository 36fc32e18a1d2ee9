"""The exit policy of DESIGN.md: where a provider will forward its clients, and where not.

By default a client may reach the internet and nothing else: loopback, RFC 1918,
CGNAT 100.64.0.0/10, link-local (with the 169.254.169.254 cloud metadata
address), ULA fc00::/7, fe80::/10, multicast, reserved and unspecified ranges,
every address of the router itself, and TCP port 25 are refused. The operator's
`allow` rules are consulted first and win; `deny` rules add to the defaults.

A rule is a prefix with an optional port: "192.168.1.10/32", "0.0.0.0/0 tcp:25",
"2001:db8::/32 udp:53", "10.0.0.0/8 443" (any of TCP and UDP). `check` returns the
reason a packet is refused (the drop counter's key), or None if it may go out.
"""

from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

from .packet import TCP, UDP, Inner

Network = IPv4Network | IPv6Network

DEFAULT_DENY: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "unspecified"),
    ("127.0.0.0/8", "loopback"),
    ("10.0.0.0/8", "private"),
    ("172.16.0.0/12", "private"),
    ("192.168.0.0/16", "private"),
    ("100.64.0.0/10", "cgnat"),
    ("169.254.0.0/16", "link_local"),
    ("192.0.0.0/24", "reserved"),
    ("198.18.0.0/15", "reserved"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::ffff:0:0/96", "mapped_v4"),
    ("64:ff9b:1::/48", "private"),
    ("fc00::/7", "ula"),
    ("fe80::/10", "link_local"),
    ("ff00::/8", "multicast"),
)


@dataclass(frozen=True, slots=True)
class Rule:
    network: Network
    proto: int | None = None  # None: any protocol
    port: int | None = None  # None: any port
    reason: str = "denied"

    def matches(self, version: int, addr: int, proto: int, dport: int) -> bool:
        net = self.network
        if net.version != version:
            return False
        shift = net.max_prefixlen - net.prefixlen
        if (addr >> shift) != (int(net.network_address) >> shift):
            return False
        if self.port is None:
            return True
        if dport != self.port:
            return False
        return proto in (TCP, UDP) if self.proto is None else proto == self.proto

    def __str__(self) -> str:
        if self.port is None:
            return str(self.network)
        proto = {TCP: "tcp:", UDP: "udp:"}.get(self.proto or 0, "")
        return f"{self.network} {proto}{self.port}"


def parse_rule(text: str, *, reason: str = "denied") -> Rule:
    """Parse "PREFIX [tcp:|udp:]PORT"; raise ValueError with one clear sentence."""
    parts = text.split()
    if not 1 <= len(parts) <= 2:
        raise ValueError(f"{text!r} is not 'PREFIX' or 'PREFIX [tcp:|udp:]PORT'")
    try:
        network = ip_network(parts[0], strict=False)
    except ValueError:
        raise ValueError(f"{parts[0]!r} is not an IP prefix") from None
    proto: int | None = None
    port: int | None = None
    if len(parts) == 2:
        spec = parts[1].lower()
        if spec.startswith("tcp:"):
            proto, spec = TCP, spec[4:]
        elif spec.startswith("udp:"):
            proto, spec = UDP, spec[4:]
        if not spec.isdigit() or not 0 < int(spec) < 65536:
            raise ValueError(f"{parts[1]!r} is not a port (1-65535, optionally tcp: or udp:)")
        port = int(spec)
    return Rule(network, proto, port, reason)


class ExitPolicy:
    def __init__(
        self,
        *,
        allow: list[Rule] | None = None,
        deny: list[Rule] | None = None,
        own_addresses: list[str] | None = None,
        block_smtp: bool = True,
    ) -> None:
        self.allow = list(allow or [])
        rules = [Rule(ip_network(p), reason=r) for p, r in DEFAULT_DENY]
        for addr in own_addresses or []:
            a = ip_address(addr)
            rules.append(Rule(ip_network(f"{a}/{a.max_prefixlen}"), reason="router"))
        if block_smtp:
            rules.append(Rule(ip_network("0.0.0.0/0"), TCP, 25, "smtp"))
            rules.append(Rule(ip_network("::/0"), TCP, 25, "smtp"))
        rules.extend(Rule(r.network, r.proto, r.port, "operator") for r in deny or [])
        self.deny = rules

    def check(self, inner: Inner) -> str | None:
        """None if the packet may leave through the exit, else the reason it may not."""
        v, dst, proto, dport = inner.version, inner.dst, inner.proto, inner.dport
        for rule in self.allow:
            if rule.matches(v, dst, proto, dport):
                return None
        for rule in self.deny:
            if rule.matches(v, dst, proto, dport):
                return rule.reason
        return None
