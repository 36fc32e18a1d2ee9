"""The provider's ledger: SQLite in the state directory, WAL mode, fsync on every commit.

Every receipt is committed (with the session's served counters) before more
credit is extended, so a crash or kill -9 loses at most one receipt interval,
and counters restored from here never regress below what a receipt covers.
A ledger that fails SQLite's integrity check is never replaced or repaired
silently: the node refuses to start and says how to recover.

Tables: sessions (one row per client session), receipts (every accepted receipt,
body and signature as signed), unverified (bytes per peer and epoch that no
receipt covers: stock WireGuard peers, and native clients before their hello).
"""

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tidewire.protocol.accounting.receipts import RECEIPT_SIZE, SignedReceipt, verify

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    session_id BLOB PRIMARY KEY,
    peer_key BLOB NOT NULL,
    client_key BLOB NOT NULL,
    session_start_ms INTEGER NOT NULL,
    served_up INTEGER NOT NULL DEFAULT 0,
    served_down INTEGER NOT NULL DEFAULT 0,
    updated_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS receipts (
    session_id BLOB NOT NULL,
    seq INTEGER NOT NULL,
    receipt BLOB NOT NULL,
    hash BLOB NOT NULL,
    time_ms INTEGER NOT NULL,
    bytes_up INTEGER NOT NULL,
    bytes_down INTEGER NOT NULL,
    PRIMARY KEY (session_id, seq)
);
CREATE INDEX IF NOT EXISTS receipts_time ON receipts (time_ms);
CREATE TABLE IF NOT EXISTS unverified (
    peer_key BLOB NOT NULL,
    epoch INTEGER NOT NULL,
    kind TEXT NOT NULL,
    bytes_up INTEGER NOT NULL DEFAULT 0,
    bytes_down INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (peer_key, epoch, kind)
);
"""


class LedgerError(Exception):
    pass


class Ledger:
    """One connection, used from one worker thread at a time (callers hold `lock`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        existed = path.exists()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.parent.chmod(0o700)  # it may have existed with a looser mode
        old_umask = os.umask(0o077)  # the database, -wal and -shm are created 0600
        try:
            self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            if existed:
                result = self.db.execute("PRAGMA integrity_check").fetchone()[0]
                if result != "ok":
                    raise LedgerError(result)
            self.db.execute("PRAGMA journal_mode=WAL")
            # FULL: every commit (each receipt) is fsynced before credit is extended; NORMAL
            # in WAL mode may lose the last commits on power loss, i.e. receipts already paid.
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
        except (sqlite3.DatabaseError, LedgerError) as exc:
            raise LedgerError(
                f"the ledger {path} failed its integrity check ({exc}); it was left untouched. "
                f"Stop here and keep a copy; restore it from a backup, or move it aside "
                f"(mv {path} {path}.bad) to start an empty ledger"
            ) from None
        finally:
            os.umask(old_umask)
        for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            if p.exists():  # files an older version created with the default umask
                p.chmod(0o600)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception, so one failure never
        leaves a transaction open for every later BEGIN to fail on."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    # -- sessions -----------------------------------------------------------

    def load_session(self, session_id: bytes) -> dict[str, Any] | None:
        with self.lock:
            row = self.db.execute(
                "SELECT peer_key, client_key, session_start_ms, served_up, served_down "
                "FROM sessions WHERE session_id = ?",
                (session_id,),
            ).fetchone()
            if row is None:
                return None
            last = self.db.execute(
                "SELECT receipt FROM receipts WHERE session_id = ? ORDER BY seq DESC LIMIT 1",
                (session_id,),
            ).fetchone()
        return {
            "peer_key": row[0],
            "client_key": row[1],
            "session_start_ms": row[2],
            "served_up": row[3],
            "served_down": row[4],
            "last": verify(last[0]) if last else None,
        }

    def open_session(
        self, session_id: bytes, *, peer_key: bytes, client_key: bytes, start_ms: int
    ) -> None:
        with self.lock:
            self.db.execute(
                "INSERT OR IGNORE INTO sessions (session_id, peer_key, client_key, session_start_ms, "
                "updated_ms) VALUES (?, ?, ?, ?, ?)",
                (session_id, peer_key, client_key, start_ms, start_ms),
            )

    def commit_receipt(
        self, signed: SignedReceipt, *, served_up: int, served_down: int, now_ms: int
    ) -> None:
        """Store a receipt and the session's counters in one durable transaction."""
        r = signed.receipt
        with self.lock, self._transaction():
            self.db.execute(
                "INSERT INTO receipts (session_id, seq, receipt, hash, time_ms, bytes_up, bytes_down) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    r.session_id,
                    r.seq,
                    signed.wire(),
                    signed.hash,
                    r.time_ms,
                    r.bytes_up,
                    r.bytes_down,
                ),
            )
            self.db.execute(
                "UPDATE sessions SET served_up = MAX(served_up, ?), served_down = MAX(served_down, ?), "
                "updated_ms = ? WHERE session_id = ?",
                (served_up, served_down, now_ms, r.session_id),
            )

    def save_served(self, rows: list[tuple[bytes, int, int]], *, now_ms: int) -> None:
        with self.lock, self._transaction():
            for session_id, up, down in rows:
                self.db.execute(
                    "UPDATE sessions SET served_up = MAX(served_up, ?), served_down = MAX(served_down, ?), "
                    "updated_ms = ? WHERE session_id = ?",
                    (up, down, now_ms, session_id),
                )

    def add_unverified(self, rows: list[tuple[bytes, int, str, int, int]]) -> None:
        """Add (peer_key, epoch, kind, up, down) to the unverified counters."""
        with self.lock, self._transaction():
            for peer_key, epoch, kind, up, down in rows:
                self.db.execute(
                    "INSERT INTO unverified (peer_key, epoch, kind, bytes_up, bytes_down) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (peer_key, epoch, kind) DO UPDATE SET "
                    "bytes_up = bytes_up + excluded.bytes_up, bytes_down = bytes_down + excluded.bytes_down",
                    (peer_key, epoch, kind, up, down),
                )

    # -- reading ------------------------------------------------------------

    def usage(self) -> list[dict[str, Any]]:
        with self.lock:
            rows = self.db.execute(
                "SELECT s.session_id, s.peer_key, s.client_key, s.session_start_ms, s.served_up, s.served_down, "
                "r.bytes_up, r.bytes_down, r.time_ms, r.seq FROM sessions s LEFT JOIN receipts r "
                "ON r.session_id = s.session_id AND r.seq = "
                "(SELECT MAX(seq) FROM receipts WHERE session_id = s.session_id) ORDER BY s.session_start_ms"
            ).fetchall()
            wg = self.db.execute(
                "SELECT peer_key, kind, SUM(bytes_up), SUM(bytes_down) FROM unverified GROUP BY peer_key, kind"
            ).fetchall()
        return [
            {
                "session_id": r[0],
                "peer_key": r[1],
                "client_key": r[2],
                "session_start_ms": r[3],
                "served_up": r[4],
                "served_down": r[5],
                "verified_up": r[6] or 0,
                "verified_down": r[7] or 0,
                "last_receipt_ms": r[8],
                "receipts": r[9] or 0,
            }
            for r in rows
        ] + [
            {"peer_key": p, "kind": k, "unverified_up": u, "unverified_down": d}
            for p, k, u, d in wg
        ]

    def epoch_data(self, start_ms: int, end_ms: int, epoch: int) -> dict[str, Any]:
        """Per session: the latest receipt in [start, end) and the latest before it."""
        with self.lock:
            latest = self.db.execute(
                "SELECT r.session_id, r.receipt, s.served_up, s.served_down FROM receipts r "
                "JOIN sessions s ON s.session_id = r.session_id "
                "WHERE r.time_ms >= ? AND r.time_ms < ? AND r.seq = (SELECT MAX(seq) FROM receipts "
                "WHERE session_id = r.session_id AND time_ms >= ? AND time_ms < ?) ORDER BY r.session_id",
                (start_ms, end_ms, start_ms, end_ms),
            ).fetchall()
            out = []
            for session_id, receipt, served_up, served_down in latest:
                base = self.db.execute(
                    "SELECT receipt FROM receipts WHERE session_id = ? AND time_ms < ? ORDER BY seq DESC LIMIT 1",
                    (session_id, start_ms),
                ).fetchone()
                out.append(
                    {
                        "latest": verify(receipt),
                        "baseline": verify(base[0]) if base else None,
                        "served_up": served_up,
                        "served_down": served_down,
                    }
                )
            unverified = self.db.execute(
                "SELECT peer_key, kind, bytes_up, bytes_down FROM unverified WHERE epoch = ? ORDER BY peer_key",
                (epoch,),
            ).fetchall()
        return {"sessions": out, "unverified": unverified}


assert RECEIPT_SIZE == 157
