"""The router's own addresses are followed while the exit runs: an address added after
start is refused within one interval, one removed is no longer the router's."""

from functools import partial
from ipaddress import ip_address

import trio
import trio.testing

from tidewire.node.addresses import parse_addresses, watch_addresses
from tidewire.node.core.exit_policy import ExitPolicy
from tidewire.node.core.packet import UDP, Inner

IP_JSON = """[{"ifindex":1,"ifname":"lo","addr_info":[{"family":"inet","local":"127.0.0.1",
"prefixlen":8},{"family":"inet6","local":"::1","prefixlen":128}]},
{"ifindex":5,"ifname":"wan0","addr_info":[{"family":"inet","local":"203.0.113.1",
"prefixlen":24,"broadcast":"203.0.113.255"},{"family":"inet6","local":"2001:db8:113::1",
"prefixlen":64},{"family":"inet6","prefixlen":64},"junk"]},{"ifname":"x","addr_info":7}]"""


def to(dst: str) -> Inner:
    a = ip_address(dst)
    return Inner(a.version, 60, 1, int(a), UDP, 53)


def test_parse_addresses() -> None:
    assert parse_addresses(IP_JSON) == [
        "127.0.0.1/8",
        "2001:db8:113::1/64",
        "203.0.113.1/24",
        "203.0.113.255/32",
        "::1/128",
    ]
    assert parse_addresses("not json") is None
    assert parse_addresses('{"a": 1}') is None


async def test_an_address_added_after_start_is_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    policy = ExitPolicy(own_addresses=["203.0.113.1/24"])
    answers = [["203.0.113.1/24"], ["203.0.113.1/24", "198.51.102.7/24"], None, ["10.0.0.1/8"]]

    async def read() -> list[str] | None:
        return answers.pop(0) if len(answers) > 1 else answers[0]

    async with trio.open_nursery() as nursery:
        await nursery.start(partial(watch_addresses, policy, interval=2.0, read=read))
        assert policy.check(to("198.51.102.7")) is None  # not added yet
        await trio.sleep(2.5)
        assert policy.check(to("198.51.102.7")) == "router"
        assert policy.check(to("198.51.102.255")) == "broadcast"
        await trio.sleep(2.0)  # `ip` failed: the last known set stays
        assert policy.check(to("198.51.102.7")) == "router"
        await trio.sleep(2.0)
        assert policy.check(to("198.51.102.7")) is None
        assert policy.check(to("203.0.113.1")) is None
        nursery.cancel_scope.cancel()


async def test_without_a_policy_it_returns_at_once() -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(watch_addresses, None)
