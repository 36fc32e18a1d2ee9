"""The node's logging (node/logs.py): a roaming storm writes a handful of lines, not one
per datagram, and says how many it held back; under the journal (stderr is the stream
$JOURNAL_STREAM names) lines carry sd-daemon priorities and no timestamp; -v/-q."""

import logging
import os
import re
from pathlib import Path

import pytest

from tidewire.node.logs import PacketPathLog, configure, is_journal, level


def test_a_storm_of_one_subject_logs_a_burst_then_a_summary(
    caplog: pytest.LogCaptureFixture,
) -> None:
    plog = PacketPathLog(logging.getLogger("t"), burst=5, window=10.0)
    with caplog.at_level(logging.INFO, logger="t"):
        for i in range(20_000):  # 500 ports in 0.3 s, many times over
            plog.log(logging.INFO, "path", b"k", "peer now at port %d", i, now=i * 1e-5)
        assert len(caplog.records) == 5
        plog.log(logging.INFO, "path", b"k", "peer now at port %d", 1, now=10.5)
    assert len(caplog.records) == 6
    assert "19995 similar lines suppressed" in caplog.records[-1].getMessage()


def test_subjects_are_limited_separately(caplog: pytest.LogCaptureFixture) -> None:
    plog = PacketPathLog(logging.getLogger("t"), burst=1, window=10.0)
    with caplog.at_level(logging.INFO, logger="t"):
        assert plog.log(logging.INFO, "path", b"a", "a", now=0.0)
        assert not plog.log(logging.INFO, "path", b"a", "a", now=0.1)
        assert plog.log(logging.INFO, "path", b"b", "b", now=0.1)
        assert plog.log(logging.INFO, "handshake", b"a", "h", now=0.1)
    assert len(caplog.records) == 3


def _log_through(stream_path: Path, environ: dict[str, str], verbosity: int = 0) -> str:
    """Configure logging onto a real file as `tidewire up` does, log one line per level."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        with open(stream_path, "w") as stream:
            configure(verbosity=verbosity, stream=stream, environ=environ)
            log = logging.getLogger("tidewire.test")
            log.debug("fine detail")
            log.info("tw0 up")
            log.warning("no kernel-side limit")
            log.error("two lines\nof error")
            stream.flush()
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    return stream_path.read_text()


def _stream_id(path: Path) -> str:
    st = os.stat(path)
    return f"{st.st_dev}:{st.st_ino}"


def test_under_the_journal_lines_carry_priorities_and_no_time(tmp_path: Path) -> None:
    out = tmp_path / "journal"
    out.touch()
    text = _log_through(out, {"JOURNAL_STREAM": _stream_id(out)}, verbosity=1)
    assert text.splitlines() == [
        "<7>tidewire.test: fine detail",
        "<6>tidewire.test: tw0 up",
        "<4>tidewire.test: no kernel-side limit",
        "<3>tidewire.test: two lines",
        "<3>of error",  # a continuation line keeps its entry's priority
    ]


def test_another_stream_than_the_journal_keeps_the_timestamps(tmp_path: Path) -> None:
    out, other = tmp_path / "stderr", tmp_path / "journal"
    other.touch()  # $JOURNAL_STREAM is inherited but stderr was redirected elsewhere
    text = _log_through(out, {"JOURNAL_STREAM": _stream_id(other)})
    lines = text.splitlines()
    assert len(lines) == 4 and "fine detail" not in text  # info: no debug
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} tidewire.test INFO tw0 up", lines[0])
    assert not lines[0].startswith("<")


@pytest.mark.parametrize("garbage", ["", "12", "a:b", "1:2:3"])
def test_a_malformed_journal_stream_is_not_the_journal(tmp_path: Path, garbage: str) -> None:
    with open(tmp_path / "f", "w") as stream:
        assert not is_journal(stream, {"JOURNAL_STREAM": garbage})


@pytest.mark.parametrize(
    ("verbosity", "lowest"),
    [
        (-3, logging.ERROR),
        (-2, logging.ERROR),
        (-1, logging.WARNING),
        (0, logging.INFO),
        (1, logging.DEBUG),
        (4, logging.DEBUG),
    ],
)
def test_v_and_q_move_the_level(verbosity: int, lowest: int) -> None:
    assert level(verbosity) == lowest


def test_quiet_up_logs_warnings_only(tmp_path: Path) -> None:
    text = _log_through(tmp_path / "err", {}, verbosity=-1)
    assert "tw0 up" not in text and "no kernel-side limit" in text
