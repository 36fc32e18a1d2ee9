"""The default exit policy of DESIGN.md, and the operator's allow and deny rules."""

from ipaddress import ip_address

import pytest

from tidewire.node.core.exit_policy import ExitPolicy, parse_rule
from tidewire.node.core.packet import FRAG_FIRST, FRAG_LATER, ICMP, TCP, UDP, Inner


def pkt(dst: str, proto: int = TCP, dport: int = 443) -> Inner:
    a = ip_address(dst)
    return Inner(a.version, 60, 1, int(a), proto, dport)


@pytest.mark.parametrize(
    ("dst", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.20.0.1", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "cgnat"),
        ("169.254.169.254", "link_local"),
        ("224.0.0.1", "multicast"),
        ("::1", "loopback"),
        ("fd00::1", "ula"),
        ("fe80::1", "link_local"),
        ("ff02::1", "multicast"),
        ("::ffff:10.0.0.1", "mapped_v4"),
        ("198.51.100.1", "router"),
    ],
)
def test_defaults_refuse(dst: str, reason: str) -> None:
    policy = ExitPolicy(own_addresses=["198.51.100.1"])
    assert policy.check(pkt(dst)) == reason


def test_internet_is_allowed_but_not_smtp() -> None:
    policy = ExitPolicy()
    assert policy.check(pkt("203.0.113.2")) is None
    assert policy.check(pkt("2001:db8::1")) is None
    assert policy.check(pkt("203.0.113.2", TCP, 25)) == "smtp"
    assert policy.check(pkt("2001:db8::1", TCP, 25)) == "smtp"
    assert policy.check(pkt("203.0.113.2", UDP, 25)) is None


def test_allow_wins_and_deny_adds() -> None:
    policy = ExitPolicy(
        allow=[parse_rule("192.168.1.10/32 tcp:80")],
        deny=[parse_rule("203.0.113.0/24 443")],
    )
    assert policy.check(pkt("192.168.1.10", TCP, 80)) is None
    assert policy.check(pkt("192.168.1.10", TCP, 22)) == "private"
    assert policy.check(pkt("203.0.113.9", UDP, 443)) == "operator"
    assert policy.check(pkt("203.0.113.9", TCP, 80)) is None


@pytest.mark.parametrize(
    "text", ["", "10.0.0.0/8 tcp:0", "nonsense", "10/8 80 90", "10.0.0.0/8 sctp:5"]
)
def test_bad_rules_are_one_sentence(text: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_rule(text)
    assert str(err.value) and "\n" not in str(err.value)


def test_directed_broadcast_and_subnet_router_anycast_are_the_router() -> None:
    policy = ExitPolicy(own_addresses=["203.0.113.1/24", "2001:db8:113::1/64", "10.9.9.1/31"])
    assert policy.check(pkt("203.0.113.255", UDP, 53)) == "broadcast"
    assert policy.check(pkt("203.0.113.0", UDP, 9999)) == "broadcast"
    assert policy.check(pkt("203.0.113.1")) == "router"
    assert policy.check(pkt("2001:db8:113::", UDP, 53)) == "router"
    assert policy.check(pkt("2001:db8:113::1")) == "router"
    assert policy.check(pkt("203.0.113.2")) is None  # a neighbour on the WAN: the internet
    assert policy.check(pkt("2001:db8:113::2")) is None
    assert policy.check(pkt("10.9.9.0")) == "private"  # /31: no broadcast, a private peer


def test_own_addresses_can_be_replaced() -> None:
    policy = ExitPolicy(own_addresses=["198.51.100.1/24"])
    assert policy.check(pkt("198.51.100.1")) == "router"
    policy.set_own_addresses(["198.51.100.1/24", "198.51.102.7/24", "2001:db8:5::9/64"])
    assert policy.check(pkt("198.51.102.7")) == "router"
    assert policy.check(pkt("198.51.102.255")) == "broadcast"
    assert policy.check(pkt("2001:db8:5::")) == "router"
    policy.set_own_addresses(["198.51.102.7/24"])
    assert policy.check(pkt("198.51.100.1")) is None
    assert policy.check(pkt("198.51.100.255")) is None


@pytest.mark.parametrize(
    ("dst", "reason"),
    [
        ("64:ff9b::192.168.1.1", "private"),  # NAT64 well-known prefix, RFC 6052
        ("64:ff9b::7f00:1", "loopback"),
        ("64:ff9b::a9fe:a9fe", "link_local"),  # 169.254.169.254, the cloud metadata
        ("64:ff9b::cb00:7101", "router"),  # 203.0.113.1, the router itself
        ("2002:c0a8:0101::1", "private"),  # 6to4 of 192.168.1.1, RFC 3056
        ("2002:0a00:0001:5::1", "private"),  # 6to4 of 10.0.0.1
        ("2001:0:c0a8:0101::1", "private"),  # Teredo server 192.168.1.1, RFC 4380
        ("2001:0:cb00:7102:0:0:3f57:fefe", "private"),  # Teredo client 192.168.1.1 (XOR)
        ("2001:0:cb00:7102:0:0:9bbf:fefe", "cgnat"),  # Teredo client 100.64.1.1
    ],
)
def test_embedded_ipv4_is_refused_like_the_address_itself(dst: str, reason: str) -> None:
    policy = ExitPolicy(own_addresses=["203.0.113.1"])
    assert policy.check(pkt(dst)) == reason


def test_embedded_public_ipv4_goes_out_but_not_smtp() -> None:
    policy = ExitPolicy(deny=[parse_rule("198.51.100.0/24")])
    assert policy.check(pkt("64:ff9b::cb00:7102")) is None  # 203.0.113.2
    assert policy.check(pkt("2002:cb00:7102::1")) is None
    assert policy.check(pkt("2001:0:cb00:7102:0:0:34ff:fefd")) is None  # client 203.0.1.2
    assert policy.check(pkt("64:ff9b::cb00:7102", TCP, 25)) == "smtp"
    assert policy.check(pkt("64:ff9b::c633:6409")) == "operator"  # 198.51.100.9


def test_fragments_without_a_port_are_refused() -> None:
    policy = ExitPolicy()
    for dst in ("203.0.113.2", "2001:db8::1"):
        a = ip_address(dst)
        first = Inner(a.version, 60, 1, int(a), TCP, 25, FRAG_FIRST)
        assert policy.check(first) == "smtp"
        assert policy.check(first._replace(dport=443)) is None
        assert policy.check(first._replace(dport=-1)) == "fragment"  # header cut short
        later = Inner(a.version, 60, 1, int(a), TCP, -1, FRAG_LATER)
        assert policy.check(later) == "fragment"
        assert policy.check(later._replace(proto=ICMP)) == "fragment"
    later = Inner(4, 60, 1, int(ip_address("192.168.1.1")), UDP, -1, FRAG_LATER)
    assert policy.check(later) == "private"
    allowed = ExitPolicy(allow=[parse_rule("203.0.113.0/24")])
    assert allowed.check(Inner(4, 60, 1, int(ip_address("203.0.113.2")), TCP, -1, 2)) is None


def test_embedded_rules_for_the_firewall() -> None:
    rules = {(str(r.network), r.reason) for r in ExitPolicy().embedded_rules()}
    assert ("64:ff9b::c0a8:0/112", "private") in rules
    assert ("2002:c0a8::/32", "private") in rules
    assert ("2001:0:c0a8::/48", "private") in rules
    assert ("64:ff9b::a00:0/104", "private") in rules


def test_the_guard_table_limits_handshakes_per_source_before_the_socket() -> None:
    from tidewire.node.firewall import guard_ruleset

    text = guard_ruleset("tw0", 51820)
    init = "udp dport 51820 udp length 156 @th,64,32 0x01000000"
    assert "table inet tidewire_guard_tw0" in text
    assert f"{init} meter tw_init4 size 65536 {{ ip saddr limit rate over 100/second" in text
    assert "ip6 saddr & ffff:ffff:ffff:ffff:: limit rate over 100/second" in text
    assert "udp length 100 @th,64,32 0x02000000" in text  # responses too


def test_resolver_exception_is_exactly_its_address_and_port_53() -> None:
    """The provider's resolver for its clients: the router's tunnel address is reachable
    on UDP and TCP 53 and nothing else, and no other router address gains anything."""
    policy = ExitPolicy(own_addresses=["10.99.0.1/24", "203.0.113.1/24"], resolver=["10.99.0.1"])
    assert policy.check(pkt("10.99.0.1", UDP, 53)) is None
    assert policy.check(pkt("10.99.0.1", TCP, 53)) is None
    assert policy.check(pkt("10.99.0.1", UDP, 5353)) == "router"
    assert policy.check(pkt("10.99.0.1", TCP, 22)) == "router"
    assert policy.check(pkt("10.99.0.1", ICMP, -1)) == "router"
    assert policy.check(pkt("203.0.113.1", UDP, 53)) == "router"
    assert policy.check(pkt("10.99.0.255", UDP, 53)) == "broadcast"
    assert policy.check(pkt("10.99.0.7", UDP, 53)) == "private"
    later = Inner(4, 60, 1, int(ip_address("10.99.0.1")), UDP, -1, FRAG_LATER)
    assert policy.check(later) == "router"
    first = Inner(4, 60, 1, int(ip_address("10.99.0.1")), UDP, 53, FRAG_FIRST)
    assert policy.check(first) == "fragment"
    # NAT64 embedding the resolver's address gains nothing from the exception
    assert policy.check(pkt("64:ff9b::a63:1", UDP, 53)) == "router"
    # without a resolver the router's address stays closed on port 53
    assert ExitPolicy(own_addresses=["10.99.0.1/24"]).check(pkt("10.99.0.1", UDP, 53)) == "router"


def test_firewall_accepts_exactly_the_resolver_before_the_router_drop() -> None:
    from tidewire.node.firewall import ruleset

    policy = ExitPolicy(own_addresses=["10.99.0.1/24"], resolver=["10.99.0.1", "fd99::1"])
    text = ruleset("tw0", "wan0", policy)
    chain = text.split("chain input {")[1].split("chain postrouting")[0]
    lines = [ln.strip() for ln in chain.splitlines() if "iifname" in ln]
    assert lines == [
        'iifname "tw0" ip daddr 10.99.0.1 meta l4proto { tcp, udp } th dport 53 accept',
        'iifname "tw0" ip6 daddr fd99::1 meta l4proto { tcp, udp } th dport 53 accept',
        'iifname "tw0" counter drop',
    ], chain
    forward = text.split("chain forward {")[1].split("chain input")[0]
    assert "dport 53 accept" not in forward
    plain = ruleset("tw0", "wan0", ExitPolicy(own_addresses=["10.99.0.1/24"]))
    assert "dport 53" not in plain
