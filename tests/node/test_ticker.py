"""The ticker (node/ticker.py), in virtual time: it wakes every interval for one window
after the last packet, and not at all on an idle link."""

import trio
import trio.testing

from tidewire.node.ticker import Ticker


async def _ticks_after(ticker: Ticker, seconds: float) -> int:
    before = ticker.ticks
    await trio.sleep(seconds)
    return ticker.ticks - before


async def test_no_ticks_on_an_idle_link(autojump_clock: trio.testing.MockClock) -> None:
    ticker = Ticker(interval=0.010, window=1.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker.run)
        assert await _ticks_after(ticker, 60.0) == 0
        nursery.cancel_scope.cancel()


async def test_ticks_for_one_window_after_the_last_packet(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ticker = Ticker(interval=0.010, window=1.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker.run)
        await trio.sleep(5.0)
        ticker.poke(trio.current_time())
        # 10 ms apart until a second has passed since the packet: about 100 wake-ups
        assert 99 <= await _ticks_after(ticker, 1.5) <= 101
        assert await _ticks_after(ticker, 30.0) == 0
        # traffic that goes on keeps it going; each packet restarts the window, so
        # packets 0.5 s apart for 2 s mean ticks for 3 s
        before = ticker.ticks
        for _ in range(5):
            ticker.poke(trio.current_time())
            await trio.sleep(0.5)
        await trio.sleep(5.0)
        assert 299 <= ticker.ticks - before <= 301
        nursery.cancel_scope.cancel()


async def test_an_interval_of_zero_is_off(autojump_clock: trio.testing.MockClock) -> None:
    ticker = Ticker(interval=0.0)
    ticker.poke(trio.current_time())
    with trio.fail_after(1):
        await ticker.run()  # returns at once instead of ticking
    assert ticker.ticks == 0
