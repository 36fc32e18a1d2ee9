"""The reload's difference (node/core/reload.py): what a re-read config changes in a running
node, what it leaves, and what it can only report as needing a restart."""

from dataclasses import replace
from ipaddress import ip_interface, ip_network
from pathlib import Path

import pytest

from tidewire.node.config import ConfigError, ExitSpec, NodeConfig, PeerSpec
from tidewire.node.config.share import Quota, QuotaPeriod, ShareConfig
from tidewire.node.core.exit_policy import parse_rule
from tidewire.node.core.relay import RelayConfig
from tidewire.node.core.reload import PEER_FIELDS, applied, check_allowed_ips, diff
from tidewire.protocol.link.profile import Mode

A, B, C = bytes([1] * 32), bytes([2] * 32), bytes([3] * 32)


def peer(key: bytes, *nets: str, **kw: object) -> PeerSpec:
    return PeerSpec(public_key=key, allowed_ips=[ip_network(n) for n in nets], **kw)  # type: ignore[arg-type]


def node(*peers: PeerSpec, **kw: object) -> NodeConfig:
    return NodeConfig(
        path=Path("/etc/tidewire/tw9.toml"),
        name="tw9",
        private_key=bytes([9] * 32),
        peers=list(peers),
        **kw,  # type: ignore[arg-type]
    )


def by_key(cfg: NodeConfig) -> dict[bytes, PeerSpec]:
    return {p.public_key: p for p in cfg.peers}


def test_the_same_config_changes_nothing() -> None:
    running = node(peer(A, "10.0.0.2/32", endpoint="192.0.2.1:51820"), peer(B, "10.0.0.3/32"))
    again = node(peer(A, "10.0.0.2/32", endpoint="192.0.2.1:51820"), peer(B, "10.0.0.3/32"))
    change = diff(running, again, peers=by_key(running))
    assert not change
    assert (change.added, change.removed, change.changed, change.restart) == ([], [], [], [])


def test_a_peer_moved_in_the_file_is_not_a_change() -> None:
    running = node(peer(A, "10.0.0.2/32", "fd00::2/128", line=5))
    moved = node(peer(A, "fd00::2/128", "10.0.0.2/32", line=17))  # other line, other order
    assert not diff(running, moved, peers=by_key(running))


def test_peers_added_and_removed_by_key() -> None:
    running = node(peer(A, "10.0.0.2/32"), peer(B, "10.0.0.3/32"))
    new = node(peer(B, "10.0.0.3/32"), peer(C, "10.0.0.4/32"))
    change = diff(running, new, peers=by_key(running))
    assert [s.public_key for s in change.added] == [C]
    assert change.removed == [A]
    assert change.changed == []


def test_a_peer_added_at_run_time_goes_unless_the_file_has_it() -> None:
    running = node(peer(A, "10.0.0.2/32"))
    live = {**by_key(running), B: peer(B, "10.0.0.3/32")}  # `tidewire peer add`
    assert diff(running, running, peers=live).removed == [B]


@pytest.mark.parametrize("origin", ["exit", "open"])
def test_a_dynamic_peer_is_never_removed_or_compared(origin: str) -> None:
    running = node(peer(A, "10.0.0.2/32"))
    live = {**by_key(running), B: peer(B, "0.0.0.0/0", origin=origin)}  # made by the node
    assert not diff(running, running, peers=live)


@pytest.mark.parametrize(
    ("origin", "maker"), [("exit", "the exit choice"), ("open", "open admission")]
)
def test_a_file_naming_a_dynamic_peer_is_refused_naming_the_file_and_line(
    origin: str, maker: str
) -> None:
    running = node(peer(A, "10.0.0.2/32"))
    live = {**by_key(running), B: peer(B, "0.0.0.0/0", origin=origin)}
    new = node(peer(A, "10.0.0.2/32"), peer(B, "10.0.0.3/32", line=12))
    with pytest.raises(ConfigError) as err:
        diff(running, new, peers=live)
    assert str(err.value).startswith("/etc/tidewire/tw9.toml:12: peer #2 public_key: peer ")
    assert f"is a dynamic peer that {maker} made" in str(err.value)


@pytest.mark.parametrize(
    ("field", "edit"),
    [
        ("allowed_ips", {"allowed_ips": [ip_network("10.0.0.0/24")]}),
        ("endpoint", {"endpoint": "192.0.2.9:51820"}),
        ("endpoint", {"fallbacks": ["masked://192.0.2.1:443"]}),
        ("persistent_keepalive", {"persistent_keepalive": 25}),
        ("preshared_key", {"preshared_key": bytes([7] * 32)}),
        ("provider", {"provider": True}),
        ("mode", {"mode": Mode.WIREGUARD}),
    ],
)
def test_each_field_of_a_peer_is_a_change_of_that_field(
    field: str, edit: dict[str, object]
) -> None:
    old = peer(A, "10.0.0.2/32", endpoint="192.0.2.1:51820")
    running = node(old)
    change = diff(running, node(replace(old, **edit)), peers=by_key(running))  # type: ignore[arg-type]
    assert [(c.spec.public_key, c.fields) for c in change.changed] == [(A, (field,))]
    assert change.changed[0].readd == (field == "mode")  # only a new mode needs a new session
    assert field in PEER_FIELDS


def test_share_keys_that_differ() -> None:
    running = node(share=ShareConfig(download=1_000_000, max_clients=4))
    new = node(
        share=ShareConfig(download=2_000_000, max_clients=4, quota=Quota(10**9, QuotaPeriod.DAY))
    )
    change = diff(running, new, peers={})
    assert change.share == ("download", "quota")
    assert change and not change.restart


def test_exit_rules_change_in_place_but_the_exit_role_needs_a_restart() -> None:
    running = node(exit=ExitSpec(enabled=True))
    rules = node(exit=ExitSpec(enabled=True, deny=[parse_rule("203.0.113.0/24")]))
    assert diff(running, rules, peers={}).exit_policy
    assert not diff(running, rules, peers={}).restart
    off = node(exit=ExitSpec(enabled=False))
    assert diff(running, off, peers={}).restart == ["[exit] enabled"]
    assert diff(running, off, peers={}, exit_flag=True).restart == []  # --exit holds it on


def test_dns_servers_change_in_place_the_resolver_needs_a_restart() -> None:
    running = node()
    new = node()
    new.dns.servers = ["10.99.0.1"]
    assert diff(running, new, peers={}).dns
    new = node()
    new.dns.resolver = True
    change = diff(running, new, peers={})
    assert (change.dns, change.restart) == (False, ["[dns] resolver"])


def test_relay_limits_change_in_place_its_role_and_receipts_need_a_restart() -> None:
    running = node(relay=RelayConfig(enabled=True))
    new = node(relay=RelayConfig(enabled=True, pair_rate=None, max_pairs=8, price=5))
    change = diff(running, new, peers={})
    assert change.relay == ("pair_rate", "max_pairs", "price")
    assert change and not change.restart
    after = applied(running, new)
    assert (after.relay.pair_rate, after.relay.max_pairs, after.relay.price) == (None, 8, 5)
    for edit in ({"enabled": False}, {"require_receipts": True}):
        other = node(relay=RelayConfig(**{"enabled": True, **edit}))  # type: ignore[arg-type]
        change = diff(running, other, peers={})
        assert change.restart == ["[relay] enabled, require_receipts"]
        assert not change and applied(running, other).relay == running.relay


@pytest.mark.parametrize(
    ("name", "edit"),
    [
        ("[interface] private_key", {"private_key": bytes([8] * 32)}),
        ("[interface] listen", {"listen_port": 51999}),
        ("[interface] listen", {"masked_port": 443}),
        ("[interface] address", {"addresses": [ip_interface("10.99.0.1/24")]}),
        ("[interface] mtu", {"mtu": 1280}),
        ("[metrics] listen", {"metrics_listen": ("127.0.0.1", 9586)}),
        ("[exit] outbound_interface", {"exit": ExitSpec(outbound_interface="wan1")}),
    ],
)
def test_what_only_a_restart_changes_is_reported_not_applied(
    name: str, edit: dict[str, object]
) -> None:
    running = node(peer(A, "10.0.0.2/32"))
    new = replace(running, **edit)  # type: ignore[arg-type]
    change = diff(running, new, peers=by_key(running))
    assert change.restart == [name]
    assert not change  # nothing to apply
    kept = applied(running, new)
    assert kept == running  # the running value stays, so the next reload reports it again


def test_applied_takes_what_was_applied_and_keeps_the_rest() -> None:
    running = node(peer(A, "10.0.0.2/32"), exit=ExitSpec(enabled=True))
    deny = [parse_rule("198.51.100.0/24")]
    new = node(
        peer(B, "10.0.0.3/32"),
        mtu=1280,
        share=ShareConfig(download=5_000_000),
        exit=ExitSpec(enabled=False, deny=deny),
    )
    after = applied(running, new)
    assert [p.public_key for p in after.peers] == [B]
    assert after.share.download == 5_000_000
    assert after.exit.deny == deny and after.exit.enabled  # rules applied, role kept
    assert after.mtu == 1420
    assert diff(after, new, peers=by_key(after)).restart == ["[interface] mtu", "[exit] enabled"]


def test_a_prefix_two_peers_claim_is_refused_naming_the_file_and_line() -> None:
    cfg = node(peer(A, "10.0.0.2/32", line=5), peer(B, "10.0.0.0/24", "10.0.0.2/32", line=9))
    with pytest.raises(ConfigError) as err:
        check_allowed_ips(cfg)
    assert str(err.value) == (
        "/etc/tidewire/tw9.toml:9: peer #2 allowed IPs: 10.0.0.2/32 belongs to peer"
        f" {short_key(A)} too"
    )
    check_allowed_ips(node(peer(A, "10.0.0.2/32"), peer(B, "10.0.0.0/24")))  # nested is fine


def short_key(key: bytes) -> str:
    from tidewire.protocol.keys import short

    return short(key)
