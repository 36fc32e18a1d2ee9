"""The 8128-counter replay window agrees with a brute-force model (RFC 6479 semantics as
wireguard-go's replay.go implements them: accept if below the limit, unseen, and no more
than 8128 behind the highest counter accepted so far)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from tidewire.protocol.link.constants import REPLAY_WINDOW
from tidewire.protocol.link.replay import ReplayWindow


class Model:
    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.highest = 0

    def accept(self, counter: int, limit: int) -> bool:
        if counter >= limit or counter in self.seen:
            return False
        if counter <= self.highest and self.highest - counter > REPLAY_WINDOW:
            return False
        self.seen.add(counter)
        self.highest = max(self.highest, counter)
        return True


def counters() -> st.SearchStrategy[list[int]]:
    # runs that move forward in small and large steps, jump back, and repeat
    step = st.one_of(
        st.integers(-70, 70),
        st.integers(-9000, 9000),
        st.integers(8000, 8300),
        st.integers(-8300, -8000),
    )
    return st.lists(step, max_size=300).map(_walk)


def _walk(steps: list[int]) -> list[int]:
    out, c = [], 0
    for s in steps:
        c = max(0, c + s)
        out.append(c)
    return out


@settings(max_examples=300)
@given(seq=counters(), limit=st.sampled_from([1 << 64, 5000, 20000]))
def test_window_matches_the_model(seq: list[int], limit: int) -> None:
    window, model = ReplayWindow(), Model()
    for c in seq:
        expected = model.accept(c, limit)
        assert window.check(c, limit) == expected
        assert window.accept(c, limit) == expected


def test_edges_of_the_window() -> None:
    w = ReplayWindow()
    limit = 1 << 64
    assert w.accept(0, limit)
    assert not w.accept(0, limit)
    assert w.accept(REPLAY_WINDOW + 10, limit)
    assert w.accept(10, limit)  # exactly 8128 behind: still inside
    assert not w.accept(9, limit)  # 8129 behind: outside
    assert not w.accept(limit, limit)
