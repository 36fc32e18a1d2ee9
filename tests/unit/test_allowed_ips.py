"""Cryptokey routing table: longest prefix wins, per family, and agrees with brute force."""

from ipaddress import ip_address, ip_network

from hypothesis import given
from hypothesis import strategies as st

from tidewire.node.core.routing.allowed_ips import AllowedIPs


def test_longest_prefix_wins() -> None:
    t: AllowedIPs[str] = AllowedIPs()
    t.insert("0.0.0.0/0", "default")
    t.insert("10.0.0.0/8", "ten")
    t.insert("10.1.0.0/16", "ten-one")
    t.insert("10.1.2.3/32", "host")
    t.insert("fd00::/8", "ula")

    def look(a: str) -> str | None:
        return t.lookup_v4(int(ip_address(a)))

    assert look("10.1.2.3") == "host"
    assert look("10.1.2.4") == "ten-one"
    assert look("10.2.0.1") == "ten"
    assert look("8.8.8.8") == "default"
    assert t.lookup_v6(int(ip_address("fd12::1"))) == "ula"
    assert t.lookup_v6(int(ip_address("2001:db8::1"))) is None


def test_remove_value_and_list_prefixes() -> None:
    t: AllowedIPs[object] = AllowedIPs()
    a, b = object(), object()
    t.insert("10.0.0.0/24", a)
    t.insert("fd00::/64", a)
    t.insert("10.0.1.0/24", b)
    assert sorted(map(str, t.prefixes(a))) == ["10.0.0.0/24", "fd00::/64"]
    t.remove(a)
    assert t.lookup_v4(int(ip_address("10.0.0.5"))) is None
    assert t.lookup_v4(int(ip_address("10.0.1.5"))) is b


prefixes = st.lists(
    st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 32)), min_size=1, max_size=20
)


@given(entries=prefixes, probes=st.lists(st.integers(0, 2**32 - 1), max_size=30))
def test_matches_brute_force(entries: list[tuple[int, int]], probes: list[int]) -> None:
    t: AllowedIPs[int] = AllowedIPs()
    nets = []
    for i, (addr, length) in enumerate(entries):
        net = ip_network((addr, length), strict=False)
        t.insert(net, i)
        nets.append((net, i))
    for addr in probes + [a for a, _ in entries]:
        best, best_len = None, -1
        for net, i in nets:  # the last insert of a prefix wins, as in the table
            if ip_address(addr) in net and net.prefixlen >= best_len:
                best, best_len = i, net.prefixlen
        assert t.lookup_v4(addr) == best
