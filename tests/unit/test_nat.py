"""NAT traversal's core in virtual time (node/core/nat): the mediator's mutual consent,
the punch bursts, the retry backoff, NAT detection and every bound on what a third
party can make us send."""

import itertools

import pytest

from tidewire.node.core.nat import Nat, Punch, Send, bounds, detect, mediator, puncher
from tidewire.protocol.control.nat import NatIntroduce, NatLookup, NatObserved
from tidewire.protocol.types import UDP, Path

A, B, M = b"A" * 32, b"B" * 32, b"M" * 32
EP = {A: ("198.51.100.1", 40001), B: ("203.0.113.1", 40002)}


def run(nat: Nat, *, until: float, start: float = 0.0) -> list[tuple[float, object]]:
    """Drive the timers to `until`; every action with the time it came out."""
    out: list[tuple[float, object]] = [(start, a) for a in nat.take_actions()]
    while (t := nat.get_timer()) is not None and t <= until:
        nat.handle_timer(now=max(t, start))
        out += [(max(t, start), a) for a in nat.take_actions()]
    return out


def client(heard: dict[bytes, float]) -> Nat:
    return Nat(observed=lambda k: None, heard=heard.get, local={("10.0.0.2", 51820)})


def test_a_mediator_introduces_only_two_peers_that_looked_each_other_up() -> None:
    m = Nat(observed=EP.get, heard=lambda k: None, local=set())
    m.on_lookup(A, NatLookup(B), now=0.0)
    first = m.take_actions()
    assert first == [Send(A, NatObserved(EP[A]))]  # A learns how it looks; B is not told
    assert m.counters()["lookups_waiting"] == 1
    m.on_lookup(B, NatLookup(A), now=5.0)
    assert m.take_actions() == [
        Send(B, NatObserved(EP[B])),
        Send(B, NatIntroduce(A, (EP[A],))),
        Send(A, NatIntroduce(B, (EP[B],))),
    ]
    # a wish expires: a lookup after WISH_TTL from one side alone introduces nobody
    m.on_lookup(A, NatLookup(B), now=5.0 + mediator.WISH_TTL + 1)
    assert not [
        a for a in m.take_actions() if isinstance(a, Send) and isinstance(a.message, NatIntroduce)
    ]


def test_a_mediator_bounds_lookups_and_wishes_per_peer() -> None:
    m = mediator.Mediator(observed=EP.get)
    for i in range(40):
        m.lookup(A, NatLookup(bytes([i]) * 32), now=0.0)
    assert m.counters["lookups"] == mediator.LOOKUP_BURST
    assert m.counters["lookups_rate_limited"] == 40 - mediator.LOOKUP_BURST
    for i in range(40):  # slowly enough for the bucket: the wishes' own cap holds
        m.lookup(A, NatLookup(bytes([i]) * 32), now=10.0 + i)
    assert len(m.wishes) == mediator.MAX_WISHES_PER_PEER
    m.lookup(A, NatLookup(A), now=100.0)
    assert m.counters["lookups_self"] == 1


def punches(actions: list[tuple[float, object]]) -> list[tuple[float, Path]]:
    return [(t, a.path) for t, a in actions if isinstance(a, Punch)]


def lookups(actions: list[tuple[float, object]]) -> list[float]:
    return [t for t, a in actions if isinstance(a, Send) and isinstance(a.message, NatLookup)]


def test_an_introduction_punches_at_once_and_over_two_seconds() -> None:
    heard: dict[bytes, float] = {}
    a = client(heard)
    a.add_target(B, now=0.0)
    a.established(M, now=0.0)
    assert lookups(run(a, until=0.0)) == [0.0]
    a.on_introduce(M, NatIntroduce(B, (EP[B],)), now=0.2)
    got = punches(run(a, until=3.0, start=0.2))
    path = Path(UDP, EP[B])
    assert got == [(round(0.2 + dt, 6), path) for dt in puncher.PUNCH_SENDS]
    assert a.counters()["punches_failed"] == 1


def test_unsolicited_introductions_and_absurd_endpoints_send_nothing() -> None:
    a = client({})
    a.add_target(B, now=0.0)
    a.on_introduce(M, NatIntroduce(B, (EP[B],)), now=0.0)  # we never asked M
    a.on_introduce(M, NatIntroduce(b"X" * 32, (EP[B],)), now=0.0)  # not our peer
    a.established(M, now=0.0)
    absurd = (("224.0.0.1", 5000), ("127.0.0.1", 5000), ("203.0.113.1", 0), ("fe80::1", 9))
    a.on_introduce(M, NatIntroduce(B, absurd), now=0.5)
    assert not punches(run(a, until=5.0))
    c = a.counters()
    assert c["introductions_unsolicited"] == 1
    assert c["introductions_unknown_peer"] == 1
    for reason in ("multicast", "loopback", "port", "link_local"):
        assert c[f"endpoints_refused_{reason}"] == 1


@pytest.mark.parametrize(
    ("endpoint", "reason"),
    [
        (("0.0.0.0", 1), "unspecified"),
        (("::", 1), "unspecified"),
        (("255.255.255.255", 1), "multicast"),
        (("ff02::1", 1), "multicast"),
        (("::ffff:127.0.0.1", 1), "loopback"),
        (("240.0.0.1", 1), "reserved"),
        (("10.1.2.3", 51820), None),
        (("2001:db8::5", 1), None),
    ],
)
def test_bounds(endpoint: tuple[str, int], reason: str | None) -> None:
    assert bounds.refusal(endpoint) == reason


def test_failed_punches_are_retried_with_backoff_up_to_a_minute() -> None:
    """Symmetric NATs: every introduction punches, nothing is ever heard."""
    a = client({})
    a.add_target(B, now=0.0)
    a.established(M, now=0.0)
    sent: list[float] = []
    now = 0.0
    while now < 400:
        for t, action in run(a, until=now, start=now):
            if isinstance(action, Send) and isinstance(action.message, NatLookup):
                sent.append(t)
                a.on_introduce(M, NatIntroduce(B, (EP[B],)), now=t)  # the mediator answers
        now = a.get_timer() or now + 1
    gaps = [round(y - x, 3) for x, y in itertools.pairwise(sent)]
    window = puncher.PUNCH_WINDOW  # each lookup earns a burst that fails; then the backoff
    assert gaps[:7] == [window + b for b in (1, 2, 4, 8, 16, 32, 60)]
    assert set(gaps[7:]) == {window + 60}
    assert a.counters()["punches_failed"] == len(sent)


def test_a_heard_direct_path_ends_the_lookups_and_its_loss_restarts_them() -> None:
    heard: dict[bytes, float] = {}
    a = client(heard)
    a.add_target(B, now=0.0)
    a.established(M, now=0.0)
    run(a, until=0.0)
    a.on_introduce(M, NatIntroduce(B, (EP[B],)), now=0.3)
    heard[B] = 0.4  # B's response came on the punched path
    got = run(a, until=300.0, start=0.3)
    assert a.counters()["punches_succeeded"] == 1
    assert len(punches(got)) == 1  # the burst stopped at the first answer
    first = min(lookups(got))  # no lookups while B was heard; then the path went quiet
    assert first == pytest.approx(0.4 + puncher.DIRECT_STALE, abs=puncher.DIRECT_CHECK + 1)
    assert a.counters()["direct_lost"] == 1


def test_the_node_wide_budget_bounds_punch_datagrams() -> None:
    a = client({})
    keys = [bytes([i]) * 32 for i in range(40)]
    for k in keys:
        a.add_target(k, now=0.0)
    a.established(M, now=0.0)
    run(a, until=0.0)
    many = tuple((f"203.0.113.{i}", 1000) for i in range(1, 5))
    for k in keys:
        a.on_introduce(M, NatIntroduce(k, many), now=0.1)
    assert len(punches([(0.1, x) for x in a.take_actions()])) == puncher.PUNCH_BURST
    assert a.counters()["punch_budget_exhausted"] == 40 * 4 - puncher.PUNCH_BURST


def test_nat_detection_and_the_automatic_keepalive() -> None:
    d = detect.Detector(local={("10.0.0.2", 51820)})
    assert not d.observed(M, ("10.0.0.2", 51820))  # M sees us as we are
    assert not d.behind
    assert d.observed(B, ("198.51.100.1", 40001))  # B sees a translated address
    assert d.behind
    d.forget(B)
    assert not d.behind
    assert not d.observed(M, ("127.0.0.1", 1))
    assert d.counters["observed_refused_loopback"] == 1
    assert detect.keepalive(configured=None, behind=True) == 25
    assert detect.keepalive(configured=None, behind=False) == 0
    assert detect.keepalive(configured=0, behind=True) == 0
    assert detect.keepalive(configured=10, behind=True) == 10


def test_unanswered_lookups_back_off_too() -> None:
    """The other side is not there yet: the mediator introduces nobody."""
    a = client({})
    a.add_target(B, now=0.0)
    a.established(M, now=0.0)
    sent = lookups(run(a, until=600.0))
    gaps = [round(y - x, 3) for x, y in itertools.pairwise(sent)]
    assert gaps[:8] == [1, 1, 2, 4, 8, 16, 32, 60]
    assert set(gaps[8:]) == {60}
