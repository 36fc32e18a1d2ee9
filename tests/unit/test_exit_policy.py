"""The default exit policy of DESIGN.md, and the operator's allow and deny rules."""

from ipaddress import ip_address

import pytest

from tidewire.node.core.exit_policy import ExitPolicy, parse_rule
from tidewire.node.core.packet import TCP, UDP, Inner


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
