"""Persisted timestamps survive a kill -9 at any moment: the file is always one complete
version, never a torn one."""

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from tidewire.node.state import TimestampStore, atomic_write

WRITER = """
import sys
from pathlib import Path
from tidewire.node.state import TimestampStore
store = TimestampStore(Path(sys.argv[1]))
i = 0
while True:
    i += 1
    for k in range(20):
        store.put(bytes([k]) * 32, i.to_bytes(12, "big"))
    if i == 1:  # one whole round is on disk: the test's kills start from here
        print("written", flush=True)
"""


def test_round_trip(tmp_path: Path) -> None:
    store = TimestampStore(tmp_path)
    store.put(b"k" * 32, bytes(range(12)))
    assert TimestampStore(tmp_path).get(b"k" * 32) == bytes(range(12))
    assert TimestampStore(tmp_path).get(b"x" * 32) is None
    assert oct(os.stat(tmp_path / "timestamps.json").st_mode & 0o777) == "0o600"


def test_kill_at_random_moments_never_corrupts(tmp_path: Path) -> None:
    for round_ in range(8):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE
        )
        assert proc.stdout is not None
        try:  # a loaded machine starts Python slowly: wait for the first round, not a clock
            ready, _, _ = select.select([proc.stdout], [], [], 30)
            assert ready and proc.stdout.readline() == b"written\n", "the writer never wrote"
            time.sleep(0.01 + 0.02 * round_)  # then kill it at some moment of its writing
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc.stdout.close()
        data = json.loads((tmp_path / "timestamps.json").read_text())
        values = {bytes.fromhex(v) for v in data.values()}
        assert len(data) == 20
        # every value is a complete 12-byte stamp, and they differ by at most one write round
        counters = sorted(int.from_bytes(v, "big") for v in values)
        assert all(len(v) == 12 for v in values) and counters[-1] - counters[0] <= 1


def test_atomic_write_replaces_whole(tmp_path: Path) -> None:
    p = tmp_path / "f"
    atomic_write(p, b"one")
    atomic_write(p, b"two")
    assert p.read_bytes() == b"two" and not (tmp_path / ".f.tmp").exists()
