"""tidewire's DHT node (protocol/dht, node/dht.py) against libtorrent, an independent
Mainline DHT implementation, on loopback.

libtorrent stores a BEP 44 mutable item on our node: what our node stores verifies,
and (signed with BEP 44's test-vector key) carries exactly the BEP's signature. Our
node puts an item signed with its own key, and libtorrent gets it back with the same
value and sequence. Each side announces on an info-hash and finds the other's
announce with get_peers.
"""

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import libtorrent as lt
import pytest
import trio
from nacl.signing import SigningKey

from tidewire.node.dht import DhtService
from tidewire.protocol.dht import bencode, items

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from dhtswarm import lt_session

pytestmark = pytest.mark.trio

# BEP 44's test vectors: libtorrent's 64-byte (expanded) private key and the public key
BEP44_PRIVATE = bytes.fromhex(
    "e06d3183d14159228433ed599221b80bd0a5ce8352e4bdf0262f76786ef1c74d"
    "b7e7a9fea2c0eb269d61e3b38e450a22e754941ac78479d6c54e1faf6037881d"
)
BEP44_PUBLIC = bytes.fromhex("77ff84905a91936367c01360803104f92432fcd904a43511876df5cdf3e7e548")
BEP44_SIG1 = bytes.fromhex(
    "305ac8aeb6c9c151fa120f120ea2cfb923564e11552d06a5d856091e5e853cff"
    "1260d3f39e4999684aa92eb73ffd136e6f4f3ecbfda0ce53a1608ecd7ae21f01"
)


def libtorrent_session() -> Any:
    return lt_session("127.0.0.1", 0, alerts=lt.alert.category_t.all_categories)


async def wait_for(what: str, check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        await trio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Alerts:
    def __init__(self, ses: Any) -> None:
        self.ses = ses
        self.seen: list[Any] = []

    def find(self, kind: type, pred: Callable[[Any], bool] = lambda a: True) -> Any:
        self.seen += self.ses.pop_alerts()
        return next((a for a in self.seen if isinstance(a, kind) and pred(a)), None)


async def test_dht_against_libtorrent() -> None:
    ses = libtorrent_session()
    alerts = Alerts(ses)
    svc = DhtService.bind("127.0.0.1", 0)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(svc.run)
            lt_port = await wait_for("libtorrent's listen port", ses.listen_port)
            lt_addr = ("127.0.0.1", lt_port)
            ses.add_dht_node(svc.address)
            await wait_for("libtorrent in our routing table", lambda: len(svc.node.table) >= 1)
            with trio.fail_after(20):
                await svc.bootstrap([lt_addr])

            # libtorrent puts a mutable item on us, signed with BEP 44's test key
            ses.dht_put_mutable_item(BEP44_PRIVATE, BEP44_PUBLIC, b"Hello World!", b"")
            target = items.mutable_target(BEP44_PUBLIC)
            stored = await wait_for(
                "libtorrent's put on our node", lambda: svc.node.items.get(target, now=0.0)
            )
            assert stored.item is not None
            stored.item.check()
            assert (stored.value, stored.item.seq) == (b"12:Hello World!", 1)
            assert stored.item.sig == BEP44_SIG1  # BEP 44's test 1, byte for byte

            # we put an item signed with our own key; libtorrent gets it back
            key = SigningKey(bytes(range(32)))
            salt = b"tidewire-node-record"
            value = bencode.encode(b"tidewire node record, seq 5")
            mine = items.sign(key, value, 5, salt)
            with trio.fail_after(20):
                done = await svc.put(mine)
            assert done.stored >= 1 and not done.errors, done
            ses.dht_get_mutable_item(bytes(key.verify_key), salt)
            got = await wait_for(
                "libtorrent's get of our item",
                lambda: alerts.find(lt.dht_mutable_item_alert, lambda a: a.seq == 5),
            )
            # libtorrent's view of it; the binding hands the value back as a dict with the
            # item's fields in some builds and as the decoded string in others
            salt_seen = got.salt if isinstance(got.salt, bytes) else got.salt.encode()
            assert bytes(got.key) == bytes(key.verify_key) and salt_seen == salt
            assert (got.seq, bytes(got.signature)) == (5, mine.sig)
            item = got.item
            got_value = item["value"] if isinstance(item, dict) else item
            got_value = got_value.encode() if isinstance(got_value, str) else bytes(got_value)
            assert bencode.encode(got_value) == value

            # announces both ways
            info_hash = bytes(range(20))
            ses.dht_announce(lt.sha1_hash(info_hash), 6999, 0)
            await wait_for(
                "libtorrent's announce on our node",
                lambda: svc.node.peers.get(info_hash, now=time.monotonic()),
            )
            other = bytes(range(1, 21))
            with trio.fail_after(20):
                announced = await svc.announce(other, 7001)
            assert announced.stored >= 1
            ses.dht_get_peers(lt.sha1_hash(other))
            reply = await wait_for(
                "libtorrent's get_peers",
                lambda: alerts.find(lt.dht_get_peers_reply_alert, lambda a: a.num_peers() > 0),
            )
            assert ("127.0.0.1", 7001) in [tuple(p) for p in reply.peers()]
            assert not {k: v for k, v in svc.node.drops.items() if k != "send_failed"}, (
                svc.node.drops
            )
            nursery.cancel_scope.cancel()
    finally:
        svc.close()
        for a in alerts.seen[-30:]:
            if isinstance(a, lt.dht_log_alert | lt.dht_pkt_alert):
                print(a.message())
        del ses
