"""The impairment box's model of one direction (netns-lab/middlebox/link_model.py), in
virtual time: delay, rate spacing, the tail drop, FIFO order under jitter, seeded loss;
and the box's control requests, any JSON at all answered or refused in a sentence."""

import random
import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from middlebox.impair import SO_TIMESTAMPNS, arrival, control, impairment_from
from middlebox.link_model import Impairment, LinkModel

FRAME = bytes(1250)  # 10,000 bits


def never() -> float:
    return 0.99


def test_a_frame_is_due_exactly_after_the_delay() -> None:
    link = LinkModel(Impairment(delay=0.05))
    assert link.arrive(FRAME, now=10.0, rng=never)
    assert link.deadline() == pytest.approx(10.05)
    assert link.due(now=10.049) == []
    assert link.due(now=10.05) == [FRAME]
    assert link.deadline() is None


def test_the_rate_spaces_frames_by_their_serialisation_time() -> None:
    link = LinkModel(Impairment(rate=1e6))  # 10,000 bits take 10 ms
    for _ in range(3):
        link.arrive(FRAME, now=0.0, rng=never)
    times = []
    while (t := link.deadline()) is not None:
        times.append(t)
        link.due(now=t)
    assert times == pytest.approx([0.01, 0.02, 0.03])


def test_a_full_queue_drops_at_the_tail() -> None:
    link = LinkModel(Impairment(rate=1e6, limit=2))  # two 1,500-byte frames' worth
    accepted = [link.arrive(FRAME, now=0.0, rng=never) for _ in range(4)]
    assert accepted == [True, True, False, False]
    assert link.stats.overflow == 2
    assert link.due(now=0.0125)  # the wire drains: room again
    assert link.arrive(FRAME, now=0.0125, rng=never)


def test_jitter_never_reorders() -> None:
    rng = random.Random(7)
    link = LinkModel(Impairment(delay=0.02, jitter=0.015))
    frames = [i.to_bytes(2, "big") for i in range(200)]
    dues = []
    for i, frame in enumerate(frames):
        link.arrive(frame, now=i * 0.01, rng=rng.random)
        dues.append(link._queue[-1][1])
    assert min(dues) >= 0.005 and len(set(dues)) > 100  # spread, never below delay - jitter
    assert link.due(now=10.0) == frames
    assert dues == sorted(dues)


def test_loss_takes_its_share() -> None:
    rng = random.Random(1)
    link = LinkModel(Impairment(loss=0.25))
    kept = sum(link.arrive(FRAME, now=0.0, rng=rng.random) for _ in range(10_000))
    assert 7300 <= kept <= 7700
    assert link.stats.lost == 10_000 - kept


def stamp(seconds: float) -> list[tuple[int, int, bytes]]:
    whole = int(seconds)
    return [
        (
            socket.SOL_SOCKET,
            SO_TIMESTAMPNS,
            struct.pack("qq", whole, round((seconds - whole) * 1e9)),
        )
    ]


def test_a_frame_arrives_when_the_kernel_stamped_it_not_when_it_was_read() -> None:
    # stamped 4 ms before the box read it: it joins the link 4 ms earlier on the box's clock
    assert arrival(stamp(1000.000), wall=1000.004, mono=50.0) == pytest.approx(49.996)
    # no stamp, a stamp from the future (the wall clock stepped) or an absurdly old one
    assert arrival([], wall=1000.0, mono=50.0) == 50.0
    assert arrival(stamp(1000.5), wall=1000.0, mono=50.0) == 50.0
    assert arrival(stamp(900.0), wall=1000.0, mono=50.0) == 49.0


def test_bad_settings_are_refused_with_their_name() -> None:
    with pytest.raises(ValueError, match="loss"):
        Impairment(loss=1.5)
    with pytest.raises(ValueError, match="'delya'"):
        impairment_from({"op": "set", "delya": 0.1})
    for bad in ("fast", float("nan"), float("inf"), 10**400, True):
        with pytest.raises(ValueError, match="rate must be a number"):
            impairment_from({"rate": bad})
    assert impairment_from({"op": "set", "limit": 5.0, "delay": 1}) == Impairment(
        delay=1.0, limit=5
    )


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@given(JSON | st.fixed_dictionaries({"op": st.sampled_from(["set", "stats"])}, optional={
    "dir": st.sampled_from(["ab", "ba", "both", "up"]), "delay": JSON, "loss": JSON}))  # fmt: skip
def test_any_control_request_is_answered_or_refused_in_a_sentence(request: object) -> None:
    links = {"ab": LinkModel(Impairment()), "ba": LinkModel(Impairment())}
    try:
        answer = control(links, request)
    except ValueError as e:
        assert str(e)
    else:
        assert answer == {"ok": True} or set(answer) == {"ab", "ba"}
