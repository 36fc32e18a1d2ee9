"""`hops` in the exit choice, in virtual time (node/core/exits.py): with `hops = 2` an
exit's session may use relays only (never DIRECT), the first relay is the one our
selected route goes through, an exit no relay reaches is not chosen and is failed over
from, and the report says why nothing is chosen."""

from tidewire.node.core import exits
from tidewire.node.core.exits import DIRECT, ExitChooser, Offer, Preferences

A, B = b"A" * 32, b"B" * 32  # exits
R1, R2, R3, R4 = b"1" * 32, b"2" * 32, b"3" * 32, b"4" * 32  # relay neighbours
ME = b"M" * 32


def run(ch: ExitChooser, until: float, *, start: float = 0.0) -> float:
    t = start
    while (due := ch.get_timer()) is not None and due <= until:
        t = max(t, due)
        ch.handle_timer(now=t)
    return t


def chooser(hops: int, offers: list[bytes]) -> ExitChooser:
    ch = ExitChooser(Preferences(hops=hops), own_key=ME)
    ch.set_offers([Offer(k) for k in offers], now=0.0)
    for k in offers:
        ch.measured(k, metric=10.0, up=True, now=0.0)
    return ch


def test_two_hops_never_offers_the_direct_path() -> None:
    ch = chooser(2, [A])
    ch.routed_via(A, {R1: 30.0, A: 5.0}, selected=A, now=0.0)  # A is also our neighbour
    assert ch.paths(A) == [R1]  # the route through A itself is the direct one
    one = chooser(1, [A])
    one.routed_via(A, {R1: 30.0, A: 5.0}, selected=A, now=0.0)
    assert one.paths(A) == [DIRECT, R1]


def test_the_first_relay_is_our_selected_routes_then_the_rest_by_metric() -> None:
    ch = chooser(2, [A])
    ch.routed_via(A, {R1: 40.0, R2: 20.0, R3: 30.0, R4: 90.0, ME: 1.0}, selected=R1, now=0.0)
    assert ch.paths(A) == [R1, R2, R3]  # at most MAX_RELAYS, never ourselves
    assert len(ch.paths(A)) == exits.MAX_RELAYS
    ch.routed_via(A, {R1: 40.0, R2: 20.0}, selected=None, now=1.0)
    assert ch.paths(A) == [R2, R1]


def test_with_two_hops_an_exit_no_relay_reaches_is_not_chosen() -> None:
    ch = chooser(2, [A, B])
    ch.measured(A, metric=1.0, up=True, now=0.0)  # A is near, but only directly
    ch.routed_via(B, {R1: 80.0}, selected=R1, now=0.0)
    run(ch, exits.SETTLE)
    assert ch.current == B
    rows = {r["public_key"]: r for r in ch.report(now=exits.SETTLE)}
    assert rows[A]["no_relay"] is True and rows[A]["up"] is False
    assert rows[B]["no_relay"] is False and rows[B]["relays"] == [R1]


def test_with_one_hop_the_same_exit_is_chosen_directly() -> None:
    ch = chooser(1, [A, B])
    ch.measured(A, metric=1.0, up=True, now=0.0)
    ch.routed_via(B, {R1: 80.0}, selected=R1, now=0.0)
    run(ch, exits.SETTLE)
    assert ch.current == A


def test_with_no_relay_at_all_nothing_is_chosen() -> None:
    ch = chooser(2, [A, B])
    run(ch, 10 * exits.SETTLE)
    assert ch.current is None and ch.take_events() == []
    ch.routed_via(A, {R2: 50.0}, selected=R2, now=31.0)  # a relay's route arrives
    run(ch, 32.0, start=31.0)
    assert ch.current == A


def test_the_score_of_a_two_hop_exit_is_its_best_relay_route() -> None:
    ch = chooser(2, [A, B])
    ch.routed_via(A, {R1: 100.0, R2: 60.0}, selected=R1, now=0.0)
    ch.routed_via(B, {R3: 70.0}, selected=R3, now=0.0)
    run(ch, exits.SETTLE)
    assert ch.current == A
    assert ch.cost(A) == (60.0 + exits.FLOOR_MS)


def test_an_exit_that_loses_its_last_relay_is_failed_over_from_at_once() -> None:
    ch = chooser(2, [A, B])
    ch.routed_via(A, {R1: 20.0}, selected=R1, now=0.0)
    ch.routed_via(B, {R2: 60.0}, selected=R2, now=0.0)
    run(ch, exits.SETTLE)
    assert ch.current == A
    ch.take_events()
    ch.routed_via(A, {}, selected=None, now=7.0)  # R1 was killed: its route is retracted
    [ev] = ch.take_events()
    assert (ev.old, ev.new, ev.reason) == (A, B, "failover")
    assert ch.paths(B) == [R2]


def test_a_relay_lost_while_another_remains_keeps_the_exit() -> None:
    ch = chooser(2, [A, B])
    ch.routed_via(A, {R1: 20.0, R2: 30.0}, selected=R1, now=0.0)
    ch.routed_via(B, {R3: 60.0}, selected=R3, now=0.0)
    run(ch, exits.SETTLE)
    ch.routed_via(A, {R2: 30.0}, selected=R2, now=7.0)
    run(ch, 20.0, start=7.0)
    assert ch.current == A and ch.paths(A) == [R2]
