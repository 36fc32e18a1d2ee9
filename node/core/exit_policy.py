"""The exit policy of DESIGN.md: where a provider will forward its clients, and where not.

By default a client may reach the internet and nothing else: loopback, RFC 1918,
CGNAT 100.64.0.0/10, link-local (with the 169.254.169.254 cloud metadata
address), ULA fc00::/7, fe80::/10, multicast, reserved and unspecified ranges,
every address of the router itself (with the directed broadcasts of its IPv4
subnets and the subnet-router anycast of its IPv6 prefixes; `set_own_addresses`
follows changes), and TCP port 25 are refused. An IPv6 destination that embeds an
IPv4 address (NAT64, 6to4, Teredo) is refused if that IPv4 address would be, and
so is a fragment whose port cannot be checked. The operator's `allow` rules are
consulted first and win; `deny` rules add to the defaults.

A rule is a prefix with an optional port: "192.168.1.10/32", "0.0.0.0/0 tcp:25",
"2001:db8::/32 udp:53", "10.0.0.0/8 443" (any of TCP and UDP). `check` returns the
reason a packet is refused (the drop counter's key), or None if it may go out.

One exception to the router's own addresses: a provider that runs the resolver for
its clients (node/resolver.py) names its `resolver` addresses, and clients may
reach exactly those, UDP and TCP port 53, unfragmented, and nothing else of the
router (not an embedded address either: the exception is the router's, not a
NAT64 gateway's).
"""

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_interface, ip_network

from .packet import FRAG_LATER, TCP, UDP, Inner

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


# IPv6 prefixes that carry an IPv4 address, which a relay or gateway on the path turns
# back into IPv4: what they embed is refused as the IPv4 address itself would be.
NAT64_WKP = 0x0064_FF9B_0000_0000_0000_0000  # 64:ff9b::/96, top 96 bits (RFC 6052 2.1)
SIX_TO_FOUR = 0x2002  # 2002::/16, IPv4 in bits 16-47 (RFC 3056 section 2)
TEREDO = 0x2001_0000  # 2001::/32: server IPv4 in bits 32-63, client IPv4 in bits 96-127
#                       XORed with 0xffffffff (RFC 4380 section 4)
_V4_MASK = 0xFFFF_FFFF
DNS_PORT = 53

# (shift, prefix value, proto, port, reason): a Rule compiled for the per-packet scan
_Compiled = tuple[int, int, int | None, int | None, str]
# ExitPolicy.native_tables: (rules, own addresses, resolver addresses)
NativeTables = tuple[
    list[tuple[str, int, int, bytes, int, int, str]],
    list[tuple[int, bytes, str]],
    list[tuple[int, bytes]],
]


def _compile(rules: list[Rule]) -> dict[int, list[_Compiled]]:
    out: dict[int, list[_Compiled]] = {4: [], 6: []}
    for r in rules:
        shift = r.network.max_prefixlen - r.network.prefixlen
        value = int(r.network.network_address) >> shift
        out[r.network.version].append((shift, value, r.proto, r.port, r.reason))
    return out


def _first(rules: list[_Compiled], addr: int, proto: int, dport: int) -> str | None:
    """The reason of the first rule that matches, or None."""
    for shift, value, rproto, rport, reason in rules:
        if addr >> shift != value:
            continue
        if rport is None:
            return reason
        if dport == rport and (proto in (TCP, UDP) if rproto is None else proto == rproto):
            return reason
    return None


def own_destinations(addresses: Iterable[str]) -> dict[int, dict[int, str]]:
    """The router's own destinations by IP version: address -> refusal reason.

    Each entry is "ADDR" or "ADDR/PREFIXLEN" (an interface address). With a prefix, the
    IPv4 subnet's directed broadcast (and its all-zero address, the broadcast of old
    BSD stacks) are the router's too, and so is the IPv6 subnet-router anycast address
    (the all-zero host part, RFC 4291 2.6.1), which the kernel answers once forwarding
    is on. Point-to-point prefixes (/31, /32 and /127, /128; RFC 3021, RFC 6164) have
    neither. Raises ValueError on an entry that is not an address.
    """
    own: dict[int, dict[int, str]] = {4: {}, 6: {}}
    for text in addresses:
        iface = ip_interface(text)
        table = own[iface.version]
        table[int(iface.ip)] = "router"
        net = iface.network
        if iface.version == 4 and net.prefixlen <= 30:
            table.setdefault(int(net.broadcast_address), "broadcast")
            table.setdefault(int(net.network_address), "broadcast")
        elif iface.version == 6 and net.prefixlen <= 126:
            table.setdefault(int(net.network_address), "router")
    return own


class ExitPolicy:
    def __init__(
        self,
        *,
        allow: list[Rule] | None = None,
        deny: list[Rule] | None = None,
        own_addresses: list[str] | None = None,
        block_smtp: bool = True,
        resolver: Iterable[str] = (),
    ) -> None:
        self.resolver = [ip_interface(a).ip for a in resolver]
        self._resolver: dict[int, set[int]] = {4: set(), 6: set()}
        for ip in self.resolver:
            self._resolver[ip.version].add(int(ip))
        self.block_smtp = block_smtp
        self.generation = 0  # changes with the rules or the own addresses (the native copy)
        self.set_rules(allow=allow or [], deny=deny or [])
        self._own = own_destinations(own_addresses or [])

    def set_rules(self, *, allow: list[Rule], deny: list[Rule]) -> None:
        """The operator's rules (at start, and at a reload); the fixed deny list stays."""
        rules = [Rule(ip_network(p), reason=r) for p, r in DEFAULT_DENY]
        if self.block_smtp:
            rules.append(Rule(ip_network("0.0.0.0/0"), TCP, 25, "smtp"))
            rules.append(Rule(ip_network("::/0"), TCP, 25, "smtp"))
        rules.extend(Rule(r.network, r.proto, r.port, "operator") for r in deny)
        self.allow, self.deny = list(allow), rules
        self._allow, self._deny = _compile(self.allow), _compile(self.deny)
        self.generation += 1

    def set_own_addresses(self, addresses: Iterable[str]) -> None:
        """Replace the router's own addresses ("ADDR" or "ADDR/PREFIXLEN", see
        `own_destinations`); the address watcher calls this when they change."""
        self._own = own_destinations(addresses)  # one assignment: check sees old or new
        self.generation += 1

    def native_tables(self) -> NativeTables:
        """The policy as the native receive thread takes it (dataplane/src/policy.rs, which
        runs `check` on the same tables): the compiled rules in order as ("allow" or
        "deny", IP version, shift, value as 16 big-endian bytes, protocol or -1, port or
        -1, reason), the own addresses as (version, address, reason) and the resolver's
        as (version, address)."""
        rules = [
            (kind, version, shift, value.to_bytes(16, "big"), p, q, reason)
            for kind, compiled in (("allow", self._allow), ("deny", self._deny))
            for version in (4, 6)
            for shift, value, proto, port, reason in compiled[version]
            for p, q in [(-1 if proto is None else proto, -1 if port is None else port)]
        ]
        own = [(v, a.to_bytes(16, "big"), r) for v in (4, 6) for a, r in self._own[v].items()]
        resolver = [(v, a.to_bytes(16, "big")) for v in (4, 6) for a in self._resolver[v]]
        return rules, own, resolver

    def check(self, inner: Inner) -> str | None:
        """None if the packet may leave through the exit, else the reason it may not."""
        v, dst, proto, dport = inner.version, inner.dst, inner.proto, inner.dport
        if dport == DNS_PORT and dst in self._resolver[v] and proto in (TCP, UDP):
            return None if not inner.frag else "fragment"
        reason = self._verdict(v, dst, proto, dport)
        if reason is not None:
            return reason or None
        if v == 6:
            for embedded in _embedded_v4(dst):
                reason = self._verdict(4, embedded, proto, dport)
                if reason:
                    return reason
        # Fragments. The policy needs the port, which only a first fragment carries, and a
        # later fragment cannot be tied to its first without state. A real exit reassembles
        # (bounded memory and time, overlaps refused as in RFC 5722), or remembers which
        # (src, dst, id) first fragments it let out and passes only their later fragments,
        # as the kernel's conntrack defragmentation does for the nftables wall. This node
        # does neither: it checks the port of a first fragment that carries the whole TCP
        # or UDP header, refuses a first fragment that does not, and refuses every later
        # fragment. Clients lose only IP fragmentation through the exit (path MTU discovery
        # and the tunnel's MSS clamping keep TCP unfragmented); an operator's allow rule
        # without a port still lets fragments to that prefix out.
        if inner.frag and (inner.frag == FRAG_LATER or (proto in (TCP, UDP) and dport < 0)):
            return "fragment"
        return None

    def _verdict(self, version: int, addr: int, proto: int, dport: int) -> str | None:
        """ "" if an allow rule lets `addr` out, the reason if it is refused, else None."""
        if self.allow and _first(self._allow[version], addr, proto, dport) is not None:
            return ""
        return self._own[version].get(addr) or _first(self._deny[version], addr, proto, dport)

    def embedded_rules(self) -> list[Rule]:
        """The IPv4 deny rules as the IPv6 prefixes that embed them, for the nftables wall:
        NAT64 (RFC 6052), 6to4 (RFC 3056) and the Teredo server (RFC 4380). The Teredo
        client address is XORed into the low bits and is left to the node's own check."""
        out: list[Rule] = []
        for r in self.deny:
            net = r.network
            if net.version != 4:
                continue
            v4, n = int(net.network_address), net.prefixlen
            for base, at in ((NAT64_WKP << 32, 0), (SIX_TO_FOUR << 112, 80), (TEREDO << 96, 64)):
                prefixlen = 128 - at - 32 + n
                network = IPv6Network((base | (v4 << at), prefixlen))
                out.append(Rule(network, r.proto, r.port, r.reason))
        return out


def _embedded_v4(dst: int) -> tuple[int, ...]:
    """The IPv4 addresses an IPv6 destination embeds (RFC 6052, RFC 3056, RFC 4380)."""
    if dst >> 32 == NAT64_WKP:
        return (dst & _V4_MASK,)
    if dst >> 112 == SIX_TO_FOUR:
        return ((dst >> 80) & _V4_MASK,)
    if dst >> 96 == TEREDO:
        return ((dst >> 64) & _V4_MASK, (dst & _V4_MASK) ^ _V4_MASK)
    return ()
