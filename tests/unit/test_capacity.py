"""[share] capacity and quota, sans I/O (node/core/capacity.py), and the link's admission
hook: a client past max_clients is refused at the handshake, a rekey never is."""

from tidewire.node.core.capacity import Admission, QuotaMeter
from tidewire.protocol.types import UDP, Path

from .sim import Sim, pair


def test_quota_serves_up_to_the_limit_then_refuses_until_the_period_rolls() -> None:
    q = QuotaMeter(3000, start=0, end=86400)
    assert q.take(1500) and q.take(1400)
    assert q.take(100)  # the one that reaches the limit still goes
    assert not q.take(1) and q.refused == 1 and q.exhausted
    assert not q.roll(wall=86399.0, start=0, end=86400)  # not yet over
    assert not q.take(1)
    assert q.roll(wall=86400.0, start=86400, end=172800)
    assert q.used == 0 and q.take(1500)


def _handshake(sim: Sim, a, b) -> bool:  # type: ignore[no-untyped-def]
    before = len(b.received)
    sim.send(a, b, bytes(64))
    sim.run_until(sim.now + 1.0)
    return len(b.received) > before


def test_max_clients_refuses_a_new_client_and_lets_a_live_one_rekey() -> None:
    sim, a, b = pair()
    c = sim.node("carol", ("203.0.113.3", 51820))
    sim.connect(c, b)
    b.device.admit = Admission(b.device.peers.values(), max_clients=1).admit
    assert _handshake(sim, a, b)  # alice is the one client the provider takes
    assert not _handshake(sim, c, b)  # carol is refused at the handshake
    assert b.device.drops["initiation_capacity"] >= 1
    # alice rekeys (a new initiation while her session is live): still admitted
    sim.now += 130.0
    b_peer_a = b.peer(a)
    a.device.initiate(a.peer(b), now=sim.now)
    sim.flush(a)
    sim.run_until(sim.now + 1.0)
    assert b_peer_a.current is not None and sim.now - b_peer_a.current.created < 2.0
    # once alice's session is over (180 s without a new keypair), carol gets in
    sim.now += 400.0
    sim.run_until(sim.now)
    a.device.peers.clear()  # alice is gone for good
    assert _handshake(sim, c, b)


def test_admission_without_a_limit_admits_everyone() -> None:
    adm = Admission([], max_clients=None)
    assert adm.admit(object(), 0.0)  # type: ignore[arg-type]
    assert Path(UDP, ("192.0.2.1", 1))  # the import is used
