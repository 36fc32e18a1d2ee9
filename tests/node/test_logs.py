"""Rate-limited packet-path logging (node/logs.py): a roaming storm writes a handful of
lines, not one per datagram, and says how many it held back."""

import logging

import pytest

from tidewire.node.logs import PacketPathLog


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
