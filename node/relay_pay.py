"""A client pays the relays that ask for it: a relay with `[relay] require_receipts`
says so in its node record (`rprice`, protocol/control/records.py), and a node that has
a link with it, learning that record by gossip or the DHT, treats the relay as a
provider from then on (`Peers.paid_relays`) once our own datagrams go through it
(`chosen_relays`: the end that opens a pair pays, node/core/relay.py). It says hello
and signs the relay's invoices for the frames on that link against its own count, as a
configured `provider = true` does. Without that, a paid relay drops our frames once its
credit window is spent (`relay_unpaid`).

A relay priced above `[routing] max_price` is not paid (and so not used past its credit
window): the client says so once in its log. A peer that is our provider or client
already keeps its role. A forged record can only make us offer receipts to the node
that holds the link key; a relay that does not ask for them ignores our hello.
"""

import logging
from collections.abc import Collection
from typing import TYPE_CHECKING

import trio

from tidewire.node.core import relay
from tidewire.node.core.roles import Role
from tidewire.protocol.keys import short
from tidewire.protocol.types import RELAY

if TYPE_CHECKING:
    from tidewire.node.core.discovery import RecordCache
    from tidewire.node.core.paths.manager import Paths
    from tidewire.node.peers import Peers

log = logging.getLogger("tidewire.node")


def chosen_relays(paths: "Paths") -> set[bytes]:
    """The relays of the relayed paths we chose (configured, or an exit's session's): a
    pair we open there is ours to pay. A path learned from the far end (an exit answering
    on the path its client came by) is not: that pair's opener pays."""
    out = set()
    for ps in paths.sets.values():
        for cand in ps.candidates:
            if cand.path.transport == RELAY and not cand.learned:
                keys = relay.keys_of(cand.path.address[0])
                if keys is not None:
                    out.add(keys[0])
    return out


def pay_relays(
    peers: "Peers",
    cache: "RecordCache",
    *,
    opened: Collection[bytes],
    max_price: int | None,
    wall: float,
) -> list[bytes]:
    """Take up the relays among our peers whose records ask for receipts and that we open
    pairs through (`opened`: chosen_relays; the far end of a pair never pays, so an exit
    that relays reach pays nobody); the keys taken."""
    acct = peers.accountant
    if acct is None:
        return []
    taken = []
    for key, spec in peers.specs.items():
        if key not in opened or key in peers.paid_relays or spec.dynamic:
            continue
        if acct.roles.get(key) is not None:  # our provider or client already
            continue
        record = cache.record_of(key, now=wall)
        if record is None or "relay" not in record.roles or record.relay_price is None:
            continue
        if max_price is not None and record.relay_price > max_price:
            if key not in peers.priced_out:
                peers.priced_out.add(key)
                log.warning(
                    "relay %s asks %d per GiB, over max_price %d: not paid",
                    short(key),
                    record.relay_price,
                    max_price,
                )
            continue
        peers.paid_relays.add(key)
        acct.set_role(key, Role.PROVIDER)
        peer = peers.datapath.device.peers.get(key)
        if peer is not None and peer.current is not None:
            acct.handshake_completed(key, now=trio.current_time())  # our hello now
        log.info(
            "relay %s asks for receipts (%d per GiB): paying it", short(key), record.relay_price
        )
        taken.append(key)
    return taken
