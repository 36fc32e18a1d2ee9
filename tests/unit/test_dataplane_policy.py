"""The exit policy in the native receive thread (dataplane/src/policy.rs, installed from
node/core/exit_policy.py's `native_tables`) against the Python path's `ExitPolicy.check`.

- Differential: for random operator allow and deny rules (prefixes with and without
  ports and protocols), router addresses and resolver addresses, and random packets
  (IPv4 and IPv6, TCP, UDP, ICMP and others, destinations in and next to the rules'
  prefixes, NAT64, 6to4 and Teredo addresses embedding them, ports on and next to the
  rules'), the thread writes to the TUN exactly what `check` lets out and drops the
  rest as `exit_<reason>`, the Python path's counter.
- The installed policy follows changes (new rules, new own addresses, none at all).
"""

from collections import Counter
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidewire.node.core.exit_policy import ExitPolicy, Rule
from tidewire.node.core.packet import inspect

from .test_dataplane_diff import LOCAL, RECV, python_seal
from .test_dataplane_rx import HOST, PORT, inbound, native, run

pytestmark = pytest.mark.skipif(
    native is None or not hasattr(native.Inbound, "set_policy"),
    reason="tidewire._dataplane with the exit policy in its receive thread is not built",
)

SRC4, SRC6 = ip_address("10.9.1.2"), ip_address("fd00:9::5")  # the peer's allowed IPs
TCP, UDP = 6, 17
PREFIXES = [
    "203.0.113.0/24",
    "203.0.113.128/25",
    "8.8.8.8/32",
    "0.0.0.0/0",
    "192.168.1.0/24",
    "2001:db8::/32",
    "2001:db8:1::/48",
    "::/0",
]
PORTS = [None, 25, 53, 443]


def packet(dst: str, proto: int, dport: int) -> bytes:
    """A well-formed IPv4 or IPv6 packet from the peer's allowed source: TCP with ACK
    only (the thread hands SYNs to Python), UDP, or a bare payload for other protocols."""
    if proto == TCP:
        body = (1234).to_bytes(2, "big") + dport.to_bytes(2, "big") + bytes(9) + b"\x10" + bytes(6)
    elif proto == UDP:
        body = (1234).to_bytes(2, "big") + dport.to_bytes(2, "big") + bytes(4)
    else:
        body = bytes(8)
    body += b"payload"
    d = ip_address(dst)
    if d.version == 4:
        total = 20 + len(body)
        head = bytes([0x45, 0, total >> 8, total & 255, 0, 0, 0x40, 0, 64, proto, 0, 0])
        return head + SRC4.packed + d.packed + body
    head = bytes([0x60, 0, 0, 0, len(body) >> 8, len(body) & 255, proto, 64])
    return head + SRC6.packed + d.packed + body


rules = st.lists(
    st.builds(
        lambda net, port, proto: Rule(ip_network(net), proto if port else None, port),
        st.sampled_from(PREFIXES),
        st.sampled_from(PORTS),
        st.sampled_from([None, TCP, UDP]),
    ),
    max_size=4,
)


def near(net: str) -> st.SearchStrategy[str]:
    """Addresses in a prefix, at its edges and just outside it."""
    n = ip_network(net)
    first, last = int(n.network_address), int(n.broadcast_address)
    top = (1 << n.max_prefixlen) - 1
    picks = [first, last, max(first - 1, 0), min(last + 1, top), (first + last) // 2]
    make = IPv6Address if n.version == 6 else IPv4Address
    return st.sampled_from([str(make(a)) for a in picks])


def embedding(v4: str) -> list[str]:
    """The IPv6 addresses that embed `v4`: NAT64, 6to4, a Teredo server and client."""
    a = int(ip_address(v4))
    return [
        str(ip_address((0x64FF9B << 96) | a)),
        str(ip_address((0x2002 << 112) | (a << 80) | 1)),
        str(ip_address((0x20010000 << 96) | (a << 64) | 7)),
        str(ip_address((0x20010000 << 96) | (a ^ 0xFFFFFFFF))),
    ]


v4_targets = st.one_of(
    *[near(p) for p in PREFIXES if ":" not in p],
    st.sampled_from(["10.0.0.1", "127.0.0.1", "100.64.0.1", "224.0.0.1", "198.51.100.1"]),
)
destinations = st.one_of(
    v4_targets,
    *[near(p) for p in PREFIXES if ":" in p],
    st.sampled_from(["fe80::1", "fd77:77::1", "ff02::1", "::1", "64:ff9b::a00:1"]),
    v4_targets.flatmap(lambda a: st.sampled_from(embedding(a))),
)
packets = st.builds(
    lambda dst, proto, port: packet(dst, proto, port),
    destinations,
    st.sampled_from([TCP, UDP, 1, 47]),
    st.sampled_from([25, 26, 53, 443, 80]),
).filter(lambda p: not (p[0] >> 4 == 6 and p[6] not in (TCP, UDP, 58)))


def with_policy(policy: ExitPolicy) -> Any:
    rx = inbound()
    rx.set_policy(*policy.native_tables())
    return rx


def through(rx: Any, items: list[bytes], first: int = 0) -> tuple[list[bytes], Counter[str]]:
    sealed = [python_seal(RECV, LOCAL, first + i, p, None) for i, p in enumerate(items)]
    tun, back = run(rx, sealed, HOST, PORT, 0)
    assert back == []
    return tun, Counter(dict(rx.drops()))


def python_says(policy: ExitPolicy, items: list[bytes]) -> tuple[list[bytes], Counter[str]]:
    out, drops = [], Counter[str]()
    for p in items:
        inner = inspect(p)
        assert inner is not None
        reason = policy.check(inner)
        if reason is None:
            out.append(p)
        else:
            drops["exit_" + reason] += 1
    return out, drops


@settings(max_examples=150, deadline=None)
@given(
    rules,
    rules,
    st.lists(st.sampled_from(["192.168.1.1/24", "203.0.113.9/24", "2001:db8::1/64"]), max_size=2),
    st.lists(st.sampled_from(["192.168.1.1", "2001:db8::1"]), max_size=1),
    st.booleans(),
    st.lists(packets, min_size=1, max_size=16),
)
def test_the_thread_lets_out_what_the_python_check_lets_out(
    allow: list[Rule],
    deny: list[Rule],
    own: list[str],
    resolver: list[str],
    block_smtp: bool,
    items: list[bytes],
) -> None:
    policy = ExitPolicy(
        allow=allow, deny=deny, own_addresses=own, resolver=resolver, block_smtp=block_smtp
    )
    assert through(with_policy(policy), items) == python_says(policy, items)


def test_the_installed_policy_follows_changes_and_can_be_removed() -> None:
    policy = ExitPolicy()
    rx = with_policy(policy)
    web, lan, smtp = (
        packet("198.51.100.7", TCP, 443),
        packet("192.168.1.5", UDP, 53),
        packet("198.51.100.7", TCP, 25),
    )
    assert through(rx, [web, lan, smtp]) == ([web], Counter({"exit_private": 1, "exit_smtp": 1}))
    policy.set_rules(allow=[Rule(ip_network("192.168.1.0/24"))], deny=[])
    policy.set_own_addresses(["198.51.100.7/24"])
    rx.set_policy(*policy.native_tables())
    assert through(rx, [web, lan, smtp], first=3) == python_says(policy, [web, lan, smtp])
    assert through(rx, [web], first=6)[1] == Counter({"exit_router": 1})
    rx.clear_policy()
    assert through(rx, [web, lan, smtp], first=7) == ([web, lan, smtp], Counter())
