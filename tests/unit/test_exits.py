"""Exit choice in virtual time (node/core/exits.py): the score, the filters, Althea's rule
(more than 10% better for the whole window, corrected for our own load), and failover at
once when the current exit stops answering."""

import pytest

from tidewire.node.core import exits
from tidewire.node.core.exits import ExitChooser, Offer, Preferences

A, B, C = b"A" * 32, b"B" * 32, b"C" * 32


def run(ch: ExitChooser, until: float, *, start: float = 0.0) -> float:
    """Drive the chooser's timer from `start` to `until` at its own deadlines."""
    t = start
    while True:
        due = ch.get_timer()
        assert due is not None
        if due > until:
            return t
        t = max(t, due)
        ch.handle_timer(now=t)


def chooser(offers: list[Offer], metrics: dict[bytes, float], **prefs: object) -> ExitChooser:
    ch = ExitChooser(Preferences(**prefs))  # type: ignore[arg-type]
    ch.set_offers(offers, now=0.0)
    for k, m in metrics.items():
        ch.measured(k, metric=m, up=True, now=0.0)
    return ch


def test_the_first_choice_is_the_lowest_cost() -> None:
    ch = chooser([Offer(A), Offer(B)], {A: 50.0, B: 20.0})
    run(ch, 0.0)
    assert ch.current == B
    [ev] = ch.take_events()
    assert (ev.old, ev.new, ev.reason) == (None, B, "first")


def test_the_score_weighs_metric_price_and_load() -> None:
    ch = chooser(
        [Offer(A, price=0, load=0), Offer(B, price=1_000_000), Offer(C, load=100)],
        {A: 30.0, B: 30.0, C: 30.0},
    )
    assert ch.cost(A) == pytest.approx(50.0)  # (30 + 20)
    assert ch.cost(B) == pytest.approx(100.0)  # one token per GiB doubles it
    assert ch.cost(C) == pytest.approx(100.0)  # full load doubles it


def test_the_first_choice_waits_for_measurements_then_settle() -> None:
    ch = ExitChooser(Preferences())
    ch.set_offers([Offer(A), Offer(B)], now=0.0)
    ch.measured(A, metric=80.0, up=True, now=0.0)
    run(ch, 1.0)
    assert ch.current is None  # B is not measured yet
    ch.measured(B, metric=10.0, up=True, now=1.2)
    run(ch, 1.5, start=1.0)
    assert ch.current == B


def test_the_first_choice_is_made_after_settle_with_partial_measurements() -> None:
    ch = ExitChooser(Preferences())
    ch.set_offers([Offer(A), Offer(B)], now=0.0)
    ch.measured(A, metric=80.0, up=True, now=0.0)
    run(ch, exits.SETTLE - 0.1)
    assert ch.current is None
    run(ch, exits.SETTLE, start=exits.SETTLE - 0.1)
    assert ch.current == A  # measured and answering beats an unknown


def test_a_first_choice_made_before_the_best_answered_is_corrected_at_once() -> None:
    """B's handshake was lost once (the retry is 5 s later): A is chosen at SETTLE, and
    B, clearly cheaper once it answers, takes over without Althea's window."""
    ch = ExitChooser(Preferences())
    ch.set_offers([Offer(A), Offer(B)], now=0.0)
    ch.measured(A, metric=80.0, up=True, now=0.0)
    t = run(ch, exits.SETTLE)
    assert ch.current == A
    ch.measured(B, metric=10.0, up=True, now=6.0)  # 30 against 100
    run(ch, 6.0 + exits.EVALUATE, start=t)
    assert ch.current == B
    assert [e.reason for e in ch.take_events()] == ["first", "settled"]


def test_the_correction_of_a_provisional_choice_ends_after_its_window() -> None:
    ch = ExitChooser(Preferences())
    ch.set_offers([Offer(A), Offer(B)], now=0.0)
    ch.measured(A, metric=80.0, up=True, now=0.0)
    t = run(ch, exits.SETTLE + exits.PROVISIONAL + 1.0)
    assert ch.current == A
    ch.measured(B, metric=10.0, up=True, now=t)  # too late for the correction
    t = run(ch, t + exits.WINDOW - 1.0, start=t)
    assert ch.current == A
    run(ch, t + 2.0 + exits.EVALUATE, start=t)
    assert ch.current == B
    assert [e.reason for e in ch.take_events()] == ["first", "better"]


def test_a_provisional_choice_is_kept_against_less_than_ten_percent() -> None:
    ch = ExitChooser(Preferences())
    ch.set_offers([Offer(A), Offer(B)], now=0.0)
    ch.measured(A, metric=30.0, up=True, now=0.0)
    t = run(ch, exits.SETTLE)
    ch.measured(B, metric=26.0, up=True, now=t)  # 46 against 50
    run(ch, exits.SETTLE + exits.PROVISIONAL, start=t)
    assert ch.current == A


@pytest.mark.parametrize(
    "prefs, expected",
    [
        ({"max_price": 500}, A),
        ({"region": "eu"}, B),
        ({"avoid": frozenset({B})}, A),
        ({"exit": C}, C),
    ],
)
def test_filters(prefs: dict[str, object], expected: bytes) -> None:
    ch = chooser(
        [Offer(A, price=100, region="us"), Offer(B, price=900, region="eu"), Offer(C, price=9000)],
        {A: 50.0, B: 10.0, C: 300.0},
        **prefs,
    )
    run(ch, exits.SETTLE)
    assert ch.current == expected


def test_a_clearly_better_exit_wins_only_after_the_whole_window() -> None:
    ch = chooser([Offer(A), Offer(B)], {A: 30.0, B: 40.0})
    run(ch, 0.0)
    assert ch.current == A
    ch.measured(B, metric=10.0, up=True, now=1.0)  # cost 30 vs 50: 40% better
    t = run(ch, 1.0 + exits.WINDOW - 1.0)
    assert ch.current == A
    run(ch, 1.0 + exits.WINDOW + exits.EVALUATE, start=t)
    assert ch.current == B
    assert [e.reason for e in ch.take_events()] == ["first", "better"]


def test_a_break_in_the_advantage_restarts_the_window() -> None:
    ch = chooser([Offer(A), Offer(B)], {A: 30.0, B: 40.0})
    run(ch, 0.0)
    ch.measured(B, metric=10.0, up=True, now=0.5)
    t = run(ch, 100.0)
    ch.measured(B, metric=40.0, up=True, now=t)  # worse again for one evaluation
    t = run(ch, t + 1.0, start=t)
    ch.measured(B, metric=10.0, up=True, now=t)
    t = run(ch, exits.WINDOW + 50.0, start=t)
    assert ch.current == A  # 180 s in all, but not in one stretch
    run(ch, 101.0 + exits.WINDOW + 1.0, start=t)
    assert ch.current == B


def test_less_than_ten_percent_better_never_switches() -> None:
    ch = chooser([Offer(A), Offer(B)], {A: 30.0, B: 40.0})
    run(ch, 0.0)
    ch.measured(B, metric=26.0, up=True, now=0.5)  # 46 vs 50: 8% better
    run(ch, 10 * exits.WINDOW)
    assert ch.current == A


def test_our_own_load_on_the_current_exit_is_not_held_against_it() -> None:
    ch = chooser([Offer(A, load=0, clients=2), Offer(B, load=0)], {A: 30.0, B: 40.0})
    run(ch, 0.0)
    assert ch.current == A
    # A serves 2 clients and we are one of them: its record's 50% load is ours
    ch.set_offers([Offer(A, load=50, clients=2), Offer(B, load=0)], now=0.2)
    ch.measured(B, metric=28.0, up=True, now=0.5)  # 48 vs A's 50 corrected (75 uncorrected)
    run(ch, 3 * exits.WINDOW)
    assert ch.current == A


def test_failover_is_immediate_when_the_current_exit_stops_answering() -> None:
    ch = chooser([Offer(A), Offer(B), Offer(C)], {A: 10.0, B: 50.0, C: 40.0})
    run(ch, 0.0)
    ch.take_events()
    ch.measured(A, metric=None, up=False, now=7.3)
    [ev] = ch.take_events()
    assert (ev.old, ev.new, ev.reason) == (A, C, "failover")  # no timer needed


def test_failover_prefers_an_answering_exit_over_an_unknown_one() -> None:
    ch = chooser([Offer(A), Offer(B), Offer(C)], {A: 10.0, C: 400.0})
    run(ch, exits.SETTLE)
    ch.measured(A, metric=None, up=False, now=5.0)
    assert ch.current == C  # B is cheaper on paper but never answered


def test_a_fixed_exit_is_never_replaced() -> None:
    ch = chooser([Offer(A), Offer(B)], {A: 400.0, B: 10.0}, exit=A)
    run(ch, 0.0)
    ch.measured(A, metric=None, up=False, now=1.0)
    run(ch, 2 * exits.WINDOW)
    assert ch.current == A


def test_an_exit_whose_record_went_away_is_kept_while_it_answers() -> None:
    ch = chooser([Offer(A), Offer(B)], {A: 10.0, B: 50.0})
    run(ch, 0.0)
    ch.set_offers([Offer(B)], now=1.0)
    run(ch, 10.0)
    assert ch.current == A
    ch.measured(A, metric=None, up=False, now=10.0)
    assert ch.current == B


def test_standby_is_the_current_exit_and_the_next_best() -> None:
    ch = chooser([Offer(A), Offer(B), Offer(C), Offer(b"D" * 32)], {A: 10.0, B: 20.0, C: 30.0})
    run(ch, exits.SETTLE)
    assert ch.standby() == [A, B, C]
    ch.measured(B, metric=None, up=False, now=4.0)
    assert ch.standby() == [A, C, b"D" * 32]


def test_offers_are_capped_and_our_own_record_is_not_a_candidate() -> None:
    ch = ExitChooser(Preferences(), own_key=A)
    many = [Offer(i.to_bytes(32, "big")) for i in range(exits.MAX_CANDIDATES + 10)]
    ch.set_offers([Offer(A), *many], now=0.0)
    assert len(ch.offers) <= exits.MAX_CANDIDATES and A not in ch.offers
    assert ch.counters["offers_over_cap"] == 11


def test_metrics_from_paths_and_babel() -> None:
    assert exits.path_metric(0.030, 0.0) == pytest.approx(30.0)
    assert exits.path_metric(0.030, 0.5) == pytest.approx(60.0)
    assert exits.path_metric(None, 0.0) is None
    assert exits.babel_metric(256) == pytest.approx(10.0)


def test_the_exit_a_failover_left_takes_us_back_when_it_answers_again() -> None:
    """A transient failover (A stopped answering for a moment) moved us to the dearer C;
    A answers again and is clearly cheaper: back at once, not after Althea's window."""
    ch = chooser([Offer(A), Offer(C)], {A: 10.0, C: 60.0})
    t = run(ch, 20.0)
    ch.measured(A, metric=None, up=False, now=20.0)
    assert ch.current == C
    t = run(ch, 50.0, start=t)
    ch.measured(A, metric=10.0, up=True, now=50.0)  # retried and answering
    run(ch, 50.0 + exits.EVALUATE, start=t)
    assert ch.current == A
    assert [e.reason for e in ch.take_events()] == ["first", "failover", "recovered"]


def test_an_exit_that_flaps_or_comes_back_late_waits_for_the_window() -> None:
    ch = chooser([Offer(A), Offer(C)], {A: 10.0, C: 60.0})
    t = run(ch, 10.0)
    ch.measured(A, metric=None, up=False, now=10.0)
    t = run(ch, 20.0, start=t)
    ch.measured(A, metric=10.0, up=True, now=20.0)
    t = run(ch, 30.0, start=t)
    assert ch.current == A  # recovered once
    ch.measured(A, metric=None, up=False, now=30.0)  # and failed again: it flaps
    t = run(ch, 40.0, start=t)
    ch.measured(A, metric=10.0, up=True, now=40.0)
    t = run(ch, 40.0 + exits.WINDOW - 1.0, start=t)
    assert ch.current == C
    run(ch, 40.0 + exits.WINDOW + 1.0, start=t)
    assert ch.current == A  # Althea's rule, the whole window
    late = chooser([Offer(A), Offer(C)], {A: 10.0, C: 60.0})
    t = run(late, 10.0)
    late.measured(A, metric=None, up=False, now=10.0)
    t = run(late, 10.0 + exits.RETURN + 1.0, start=t)
    late.measured(A, metric=10.0, up=True, now=t)
    run(late, t + 2.0, start=t)
    assert late.current == C
