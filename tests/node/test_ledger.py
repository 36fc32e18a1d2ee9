"""The ledger: receipts durable across kill -9 at any moment, never silently replaced when
it fails its integrity check."""

import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from tidewire.node.ledger import Ledger, LedgerError
from tidewire.protocol.accounting.receipts import ZERO_HASH, Receipt, sign

CLIENT = SigningKey(bytes(range(32)))
SESSION = bytes(range(16))


def signed(seq: int, prev: bytes = ZERO_HASH):  # type: ignore[no-untyped-def]
    r = Receipt(
        SESSION, bytes(32), bytes(CLIENT.verify_key), seq, seq * 1000, seq * 10, 1, 1000 + seq, prev
    )
    return sign(r, CLIENT)


def test_receipts_and_sessions_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    ledger = Ledger(path)
    ledger.open_session(
        SESSION, peer_key=b"p" * 32, client_key=bytes(CLIENT.verify_key), start_ms=1
    )
    first = signed(1)
    ledger.commit_receipt(first, served_up=1500, served_down=20, now_ms=5)
    ledger.commit_receipt(signed(2, first.hash), served_up=2500, served_down=30, now_ms=6)
    ledger.close()
    again = Ledger(path)
    stored = again.load_session(SESSION)
    assert stored is not None and stored["last"].receipt.seq == 2
    assert (stored["served_up"], stored["served_down"]) == (2500, 30)
    again.save_served([(SESSION, 100, 1)], now_ms=7)  # never lowers the counters
    assert again.load_session(SESSION)["served_up"] == 2500  # type: ignore[index]
    data = again.epoch_data(1000, 1002, 0)
    [row] = data["sessions"]
    assert row["latest"].receipt.seq == 1 and row["baseline"] is None
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_a_corrupt_ledger_stops_the_node_and_says_how_to_recover(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    ledger = Ledger(path)
    ledger.open_session(SESSION, peer_key=b"p" * 32, client_key=bytes(32), start_ms=1)
    ledger.close()
    data = bytearray(path.read_bytes())
    data[100:4000] = b"\xff" * 3900  # the first page: schema and header
    path.write_bytes(bytes(data))
    before = path.read_bytes()
    with pytest.raises(LedgerError) as err:
        Ledger(path)
    message = str(err.value)
    assert str(path) in message and "integrity" in message and f"mv {path} {path}.bad" in message
    assert path.read_bytes() == before  # left untouched


WRITER = """
import sys
from pathlib import Path
from nacl.signing import SigningKey
from tidewire.node.ledger import Ledger
from tidewire.protocol.accounting.receipts import ZERO_HASH, Receipt, sign
key = SigningKey(bytes(range(32)))
ledger = Ledger(Path(sys.argv[1]))
sid = bytes(range(16))
ledger.open_session(sid, peer_key=b"p" * 32, client_key=bytes(key.verify_key), start_ms=1)
prev, seq = ZERO_HASH, 0
last = ledger.load_session(sid)["last"]
if last is not None:
    prev, seq = last.hash, last.receipt.seq
while True:
    seq += 1
    s = sign(Receipt(sid, bytes(32), bytes(key.verify_key), seq, seq, seq, 1, seq, prev), key)
    ledger.commit_receipt(s, served_up=seq, served_down=seq, now_ms=seq)
    prev = s.hash
    print(seq, flush=True)
"""


def test_kill_minus_9_at_random_moments_loses_no_committed_receipt(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    committed = 0
    for round_ in range(6):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        try:  # a loaded machine starts Python slowly: wait for a first commit, not a clock
            ready, _, _ = select.select([proc.stdout], [], [], 30)
            assert ready, "the writer committed nothing in 30 s"
            first = proc.stdout.readline()
            time.sleep(0.05 + 0.05 * round_)  # then kill it at some moment of its writing
        finally:
            proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        printed = [int(x) for x in (first + out).split()]
        if printed:
            committed = printed[-1]  # the writer printed only after the commit returned
        ledger = Ledger(path)  # runs the integrity check
        stored = ledger.load_session(SESSION)
        assert stored is not None and stored["last"] is not None
        assert stored["last"].receipt.seq >= committed
        count = ledger.db.execute("SELECT COUNT(*), MAX(seq) FROM receipts").fetchone()
        assert count[0] == count[1]  # no holes: every receipt from 1 to the last
        ledger.close()
    assert committed > 10
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_failed_call_is_rolled_back_and_later_calls_succeed(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.open_session(SESSION, peer_key=b"p" * 32, client_key=b"c" * 32, start_ms=1)
    bad_row = (b"p" * 32, 1, "wireguard", {"not": "bindable"}, 0)
    with pytest.raises(sqlite3.Error):
        ledger.add_unverified([(b"p" * 32, 1, "wireguard", 5, 0), bad_row])  # type: ignore[list-item]
    with pytest.raises(sqlite3.Error):
        ledger.save_served([(SESSION, {"x": 1}, 0)], now_ms=2)  # type: ignore[list-item]
    assert not ledger.db.in_transaction
    ledger.add_unverified([(b"p" * 32, 1, "wireguard", 7, 0)])
    ledger.save_served([(SESSION, 900, 80)], now_ms=3)
    rows = ledger.usage()
    assert [r["unverified_up"] for r in rows if "kind" in r] == [7]  # the failed 5 rolled back
    assert [r["served_up"] for r in rows if "session_id" in r] == [900]


def test_ledger_files_are_0600_and_the_directory_0700(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    ledger = Ledger(state / "ledger.sqlite")
    ledger.add_unverified([(b"p" * 32, 1, "wireguard", 7, 0)])  # the -wal and -shm exist now
    names = ["ledger.sqlite", "ledger.sqlite-wal", "ledger.sqlite-shm"]
    modes = {n: (state / n).stat().st_mode & 0o777 for n in names}
    assert modes == dict.fromkeys(names, 0o600)
    assert state.stat().st_mode & 0o777 == 0o700


def test_commits_are_durable_wal_with_full_sync(tmp_path: Path) -> None:
    """kill -9 keeps the page cache, so durability against power loss is checked by the
    settings themselves, read back from the connection: WAL, and synchronous=FULL (2) so
    every receipt's commit is fsynced before credit is extended."""
    ledger = Ledger(tmp_path / "ledger.sqlite")
    assert ledger.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert ledger.db.execute("PRAGMA synchronous").fetchone()[0] == 2
