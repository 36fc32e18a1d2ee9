"""A client pays a relay whose node record asks for receipts (node/relay_pay.py),
without root: a real Peers and Accountant, a record cache fed signed records, literal
times. A relay our datagrams go through becomes a provider to accounting (hello,
receipts) and stays one through a peer update; one we only receive from (the far end of
a pair never pays), a free relay, a relay over max_price and a peer that already has
a role are left as they are."""

import dataclasses
import logging
import os
import socket
from collections.abc import Iterator

import pytest
from nacl.signing import SigningKey

from tidewire.node import netconf
from tidewire.node.accounting import Accountant
from tidewire.node.config import PeerSpec
from tidewire.node.core.accounting import AccountingConfig
from tidewire.node.core.discovery import RecordCache
from tidewire.node.core.relay import encode as relay_key
from tidewire.node.core.roles import Role
from tidewire.node.datapath import DataPath
from tidewire.node.peers import Peers
from tidewire.node.relay_pay import chosen_relays, pay_relays
from tidewire.protocol.control import records
from tidewire.protocol.control.records import NodeRecord
from tidewire.protocol.link.device import Device
from tidewire.protocol.link.profile import Mode

from ..unit.helpers import keypair
from ..unit.test_node_records import NOW
from ..unit.test_node_records import RECORD as PROVIDER_RECORD

(_, RELAY), (_, OTHER), (C_PRIV, _) = (keypair("autopay-" + n) for n in "roc")
RECORD = dataclasses.replace(  # a relay's record, paid: rprice
    PROVIDER_RECORD, public_key=RELAY, roles=("relay",), price=0, relay_price=250_000
)


@pytest.fixture
def peers(monkeypatch: pytest.MonkeyPatch) -> Iterator[Peers]:
    monkeypatch.setattr(netconf, "add_routes", lambda *a, **k: None)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    dp = DataPath(
        device=Device(private_key=C_PRIV, rng=os.urandom),
        tun_fd=ours.fileno(),
        transports={},
        policy=None,
        persist_timestamp=lambda key, stamp: None,
    )
    p = Peers(
        name="twap", table=netconf.Routing.of("auto", mark=0), datapath=dp, exit_enabled=False
    )
    p.accountant = Accountant(
        public_key=dp.device.public_key,
        static_private=C_PRIV,
        config=AccountingConfig(),
        ledger=None,
        epoch_seconds=86400,
        control=dp.control,
        disconnect=lambda key: None,
        rng=os.urandom,
    )
    yield p
    ours.close()
    theirs.close()


def cache_with(*recs: NodeRecord) -> RecordCache:
    cache = RecordCache()
    for i, rec in enumerate(recs):
        item = records.make(rec, SigningKey(bytes([i + 1]) * 32), seq=i + 1)
        assert cache.offer(item, source="gossip", now=NOW) is not None
    return cache


async def add(peers: Peers, key: bytes, **kw: object) -> PeerSpec:
    spec = PeerSpec(public_key=key, mode=Mode.NATIVE, **kw)  # type: ignore[arg-type]
    await peers.add(spec)
    return spec


async def test_a_relay_that_asks_for_receipts_is_paid_as_a_provider(peers: Peers) -> None:
    spec = await add(peers, RELAY)
    acct = peers.accountant
    assert acct is not None and acct.roles.get(RELAY) is None
    assert pay_relays(peers, cache_with(), opened={RELAY}, max_price=None, wall=NOW) == []
    cache = cache_with(RECORD)
    assert pay_relays(peers, cache, opened=set(), max_price=None, wall=NOW) == []  # unused
    assert pay_relays(peers, cache, opened={RELAY}, max_price=None, wall=NOW) == [RELAY]
    assert acct.roles[RELAY] is Role.PROVIDER and RELAY in acct.used
    assert pay_relays(peers, cache, opened={RELAY}, max_price=None, wall=NOW) == []  # once
    await peers.update(dataclasses.replace(spec, provider=True))  # a reload marks it
    await peers.update(spec)  # and unmarks it: the record still asks
    assert acct.roles[RELAY] is Role.PROVIDER  # a peer update keeps it paid
    await peers.remove(RELAY)
    assert RELAY not in peers.paid_relays


async def test_a_free_relay_a_dear_one_and_a_peer_with_a_role_are_left_alone(
    peers: Peers, caplog: pytest.LogCaptureFixture
) -> None:
    await add(peers, RELAY)
    await add(peers, OTHER, provider=True)
    acct = peers.accountant
    assert acct is not None
    free = dataclasses.replace(RECORD, relay_price=None)
    assert pay_relays(peers, cache_with(free), opened={RELAY}, max_price=None, wall=NOW) == []
    other = dataclasses.replace(RECORD, public_key=OTHER)
    used = acct.used[OTHER]
    with caplog.at_level(logging.WARNING, logger="tidewire.node"):
        cache = cache_with(RECORD, other)
        assert pay_relays(peers, cache, opened={RELAY, OTHER}, max_price=100_000, wall=NOW) == []
        assert pay_relays(peers, cache, opened={RELAY, OTHER}, max_price=100_000, wall=NOW) == []
    assert acct.roles.get(RELAY) is None and acct.used[OTHER] is used
    assert len([r for r in caplog.records if "over max_price" in r.message]) == 1  # once


async def test_the_relays_we_chose_are_ours_to_pay_a_learned_one_is_not(peers: Peers) -> None:
    await add(peers, RELAY)
    exit_key = bytes([7]) * 32
    await add(peers, exit_key, endpoint=f"relay://{relay_key(RELAY)}")
    paths = peers.datapath.paths
    assert chosen_relays(paths) == {RELAY}
    for cand in paths.sets[exit_key].candidates:
        cand.learned = True  # as an exit learns its client's relayed path
    assert chosen_relays(paths) == set()
