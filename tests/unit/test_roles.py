"""What a configured peer is to accounting (node/core/roles.py): a control-only peer
(no allowed IPs, as a gossip bootstrap node) is no client, even on an exit."""

import ipaddress

import pytest

from tidewire.node.core.roles import Role, role_of

NET = [ipaddress.ip_network("10.7.0.2/32")]


@pytest.mark.parametrize(
    ("provider", "exit_enabled", "wireguard", "allowed", "role"),
    [
        (False, True, False, NET, Role.CLIENT),
        (False, True, True, NET, Role.STOCK),
        (False, True, False, [], None),  # a bootstrap node on a provider
        (False, True, True, [], None),
        (True, True, False, [], Role.PROVIDER),  # a provider we use may route nothing yet
        (True, False, False, NET, Role.PROVIDER),
        (False, False, False, NET, None),  # not an exit: nobody is a client
    ],
)
def test_roles(
    provider: bool, exit_enabled: bool, wireguard: bool, allowed: list[object], role: Role | None
) -> None:
    got = role_of(
        provider=provider, exit_enabled=exit_enabled, wireguard=wireguard, allowed_ips=allowed
    )
    assert got is role
