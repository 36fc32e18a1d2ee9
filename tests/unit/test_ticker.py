"""The ticker (node/core/ticker.py), a timer component: it has a deadline every interval
for one window after the last packet, and none on an idle link."""

from tidewire.node.core.ticker import Ticker


def run_until(ticker: Ticker, end: float) -> None:
    """Fire the ticker's deadlines in order, as the node's timer task does, until `end`."""
    while (t := ticker.get_timer()) is not None and t <= end:
        ticker.handle_timer(now=t)


def test_no_deadline_on_an_idle_link() -> None:
    ticker = Ticker(interval=0.010, window=1.0)
    assert ticker.get_timer() is None
    run_until(ticker, 60.0)
    assert ticker.ticks == 0


def test_ticks_for_one_window_after_the_last_packet() -> None:
    ticker = Ticker(interval=0.010, window=1.0)
    ticker.poke(5.0)
    assert ticker.get_timer() == 5.010
    run_until(ticker, 6.5)
    # 10 ms apart until a second has passed since the packet: about 100 wake-ups
    assert 99 <= ticker.ticks <= 101
    assert ticker.get_timer() is None
    # traffic that goes on keeps it going; each packet restarts the window, so packets
    # 0.5 s apart for 2 s mean ticks for 3 s
    before = ticker.ticks
    for i in range(5):
        ticker.poke(40.0 + 0.5 * i)
        run_until(ticker, 40.0 + 0.5 * (i + 1) - 1e-9)
    run_until(ticker, 50.0)
    assert 299 <= ticker.ticks - before <= 301


def test_an_early_wakeup_is_not_a_tick() -> None:
    ticker = Ticker(interval=0.010, window=1.0)
    ticker.poke(1.0)
    ticker.handle_timer(now=1.005)  # the timer task woke for another component
    assert ticker.ticks == 0 and ticker.get_timer() == 1.010


def test_an_interval_of_zero_is_off() -> None:
    ticker = Ticker(interval=0.0)
    ticker.poke(1.0)
    assert ticker.get_timer() is None
