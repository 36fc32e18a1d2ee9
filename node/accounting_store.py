"""The accountant's disk side: sessions opened, receipts committed, counters flushed.

A part of `Accountant` (accounting.py), apart because it is the one part that waits:
each piece of work the packet path queued runs here in order, in a worker thread,
and credit is extended only after a receipt's commit returns. A crash loses at most
what was queued and not yet committed: the client's next hello carries its last
receipt, which `_adopt_hello_receipt` takes in.
"""

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from tidewire.node.core.accounting import AccountingConfig, ClientCredit, ServedSession
from tidewire.protocol.accounting.receipts import SignedReceipt, check_successor, verify
from tidewire.protocol.accounting.report import epoch_at
from tidewire.protocol.control import channel
from tidewire.protocol.errors import RemoteProtocolError
from tidewire.protocol.keys import short

if TYPE_CHECKING:  # sqlite3 is loaded only by nodes that keep a ledger (exit role)
    from tidewire.node.accounting_gate import CreditGates
    from tidewire.node.ledger import Ledger

log = logging.getLogger("tidewire.accounting")


class AccountantStore:
    # the accountant's state this part works on (accounting.py sets it up)
    config: AccountingConfig
    ledger: "Ledger | None"
    epoch_seconds: int
    sign_public: bytes
    credits: dict[bytes, ClientCredit]
    retired: list[tuple[bytes, int, int]]
    unverified: dict[tuple[bytes, str], list[int]]
    receipts: int
    gates: "CreditGates | None"
    receive_queue: trio.MemoryReceiveChannel[tuple[str, bytes, Any]]

    _drop: Callable[[str], None]

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """The disk side: sessions opened, receipts committed, counters flushed, one at a
        time in a worker thread, in the order they were queued."""
        task_status.started()
        await self._consume()

    async def flush(self) -> None:
        if self.ledger is None:
            self.unverified.clear()
            self.retired = []
            return
        ledger = self.ledger
        epoch = epoch_at(time.time(), self.epoch_seconds)
        rows = [
            (k, epoch, kind, v[0], v[1]) for (k, kind), v in self.unverified.items() if v[0] or v[1]
        ]
        self.unverified.clear()
        served = self.retired + [
            saved_row(s) for c in self.credits.values() for s in c.sessions.values()
        ]
        self.retired = []
        now_ms = int(time.time() * 1000)
        if rows:
            await trio.to_thread.run_sync(ledger.add_unverified, rows)
        if served:
            await trio.to_thread.run_sync(lambda: ledger.save_served(served, now_ms=now_ms))

    async def _consume(self) -> None:
        async for kind, peer_key, item in self.receive_queue:
            await self.handle(kind, peer_key, item)

    async def handle(self, kind: str, peer_key: bytes, item: Any) -> None:
        """One queued piece of disk work (tests drain the queue through this)."""
        if kind == "hello":
            await self._open_session(peer_key, item)
        elif kind == "receipt":
            await self._commit(peer_key, item)
        elif kind == "flush":
            await self.flush()

    async def _open_session(self, peer_key: bytes, hello: channel.Hello) -> None:
        credit = self.credits.get(peer_key)
        if credit is None:
            return  # no longer a client
        replaced = credit.current
        if replaced is not None and replaced.session_id == hello.session_id:
            credit.refuse(hello.session_id)
            return
        known = credit.sessions.get(hello.session_id)
        if known is not None:  # back to a session still open
            await self._save_replaced(replaced, credit.adopt(known))
            return
        try:
            s = await self._load_session(peer_key, hello)
        finally:
            credit.refuse(hello.session_id)  # no longer opening; adopt() below if it worked
        if s is None or self.credits.get(peer_key) is not credit:
            return
        await self._save_replaced(replaced, credit.adopt(s))
        log.info(
            "client %s: session %s %s",
            short(peer_key),
            hello.session_id.hex()[:8],
            "resumed" if s.served_up or s.served_down else "opened",
        )

    async def _save_replaced(
        self, replaced: ServedSession | None, closed: list[ServedSession]
    ) -> None:
        """Save the counts of the session just replaced and of those closed, at once: a
        client switching sessions between flushes must not take its bytes with it."""
        rows = [saved_row(s) for s in closed]
        if replaced is not None and all(replaced is not s for s in closed):
            rows.append(saved_row(replaced))
        if not rows:
            return
        if self.ledger is None:
            return
        ledger = self.ledger
        now_ms = int(time.time() * 1000)
        try:
            await trio.to_thread.run_sync(lambda: ledger.save_served(rows, now_ms=now_ms))
        except Exception as exc:  # the next flush writes them: open ones are saved anyway
            log.warning("saving served counts failed: %s", exc)
            self.retired += [saved_row(s) for s in closed]

    async def _load_session(self, peer_key: bytes, hello: channel.Hello) -> ServedSession | None:
        stored = None
        if self.ledger is not None:
            ledger = self.ledger
            stored = await trio.to_thread.run_sync(ledger.load_session, hello.session_id)
        if stored is not None and (
            stored["peer_key"] != peer_key or stored["client_key"] != hello.client_key
        ):
            self._drop("hello_foreign_session")
            return None
        start_ms = stored["session_start_ms"] if stored else int(time.time() * 1000)
        s = ServedSession(
            session_id=hello.session_id,
            peer_key=peer_key,
            client_key=hello.client_key,
            provider_key=self.sign_public,
            session_start_ms=start_ms,
            config=self.config,
            served_up=stored["served_up"] if stored else 0,
            served_down=stored["served_down"] if stored else 0,
            last=stored["last"] if stored else None,
        )
        await self._adopt_hello_receipt(s, hello)
        if stored is None and self.ledger is not None:
            ledger = self.ledger
            await trio.to_thread.run_sync(
                lambda: ledger.open_session(
                    hello.session_id,
                    peer_key=peer_key,
                    client_key=hello.client_key,
                    start_ms=start_ms,
                )
            )
        return s

    async def _adopt_hello_receipt(self, s: ServedSession, hello: channel.Hello) -> None:
        """A resumed session: take in the client's last receipt if our ledger lacks it
        (it was in flight when we were killed). It is the client's own signature over
        counts in this session, so it can only be evidence, never a forgery."""
        if not any(hello.last_receipt):
            return
        try:
            signed = verify(hello.last_receipt)
            r = signed.receipt
            if (r.session_id, r.provider_key, r.client_key) != (
                s.session_id,
                s.provider_key,
                s.client_key,
            ):
                raise RemoteProtocolError("receipt_foreign")
            if s.last is not None and r.seq <= s.last.receipt.seq:
                return
            check_successor(s.last, signed, allow_gap=True)
        except RemoteProtocolError as exc:
            self._drop("hello_" + exc.reason)
            return
        if self.ledger is not None:
            ledger = self.ledger
            up, down = max(s.served_up, r.bytes_up), max(s.served_down, r.bytes_down)
            now_ms = int(time.time() * 1000)
            await trio.to_thread.run_sync(
                lambda: ledger.commit_receipt(signed, served_up=up, served_down=down, now_ms=now_ms)
            )
        s.served_up, s.served_down = max(s.served_up, r.bytes_up), max(s.served_down, r.bytes_down)
        s.last = signed
        s.next_seq = r.seq + 1
        s.invoiced_total = r.total

    async def _commit(self, peer_key: bytes, signed: SignedReceipt) -> None:
        credit = self.credits.get(peer_key)
        s = None if credit is None else credit.sessions.get(signed.receipt.session_id)
        if credit is None or s is None:
            return
        if s.last is not None and signed.receipt.seq <= s.last.receipt.seq:
            return  # a duplicate that was queued twice
        if self.ledger is not None:
            ledger = self.ledger
            up, down = s.served_up, s.served_down
            now_ms = int(time.time() * 1000)
            await trio.to_thread.run_sync(
                lambda: ledger.commit_receipt(signed, served_up=up, served_down=down, now_ms=now_ms)
            )
        credit.commit_receipt(s, signed)
        self.receipts += 1
        if self.gates is not None:
            self.gates.sync(peer_key)  # the threads may serve the client again at once


def saved_row(s: ServedSession) -> tuple[bytes, int, int]:
    return (s.session_id, s.served_up, s.served_down)
