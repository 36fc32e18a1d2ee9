"""Accounting in the running node: counts in the data path, the control channel, the ledger.

Roles (node/core/roles.py) come from the configuration. Control messages reach the
accountant through the control plane (node/core/control_plane.py), where it registers
a handler per message type; a message that does not fit the peer's role is refused.
Its deadlines (hello retries, invoices by time, the cut-off, ledger flushes) are
served by the node's one timer task through `get_timer` / `handle_timer`.

The per-packet calls (`outbound`, `inbound`) are synchronous and cheap; what
needs the disk (loading and opening sessions, committing receipts, saving
counters) goes through a bounded queue to `run`, which does it in a worker
thread, and credit is extended only after a receipt's commit returns.

Credit is per client (`ClientCredit`, keyed by the tunnel peer key): a client that
opens new sessions instead of paying stays in debt; a replaced session's counts are
saved when it is replaced, and a closed one's at the next flush, so every served byte
reaches the ledger. Misbehaving nodes for the lab subclass this class (the hooks are
`make_invoice` and `answer_invoice`); production code has no switch for them.
"""

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from tidewire.node.accounting_gate import HELD, CreditGates
from tidewire.node.accounting_store import AccountantStore, saved_row
from tidewire.node.core.accounting import (
    AccountingConfig,
    ClientCredit,
    ServedSession,
    UsedSession,
)
from tidewire.node.core.control_plane import ControlPlane
from tidewire.node.core.roles import Role
from tidewire.protocol.accounting.receipts import (
    RECEIPT_SIZE,
    SIGNATURE_SIZE,
    SignedReceipt,
    signing_key_from_static,
    verify,
)
from tidewire.protocol.control import channel
from tidewire.protocol.errors import RemoteProtocolError
from tidewire.protocol.keys import short

if TYPE_CHECKING:  # sqlite3 is loaded only by nodes that keep a ledger (exit role)
    from tidewire.node.ledger import Ledger

log = logging.getLogger("tidewire.accounting")

HELLO_RETRY = 2.0
FLUSH_INTERVAL = 2.0
TICK = 0.2  # housekeeping (invoices by time, the cut-off) while any session is counted


class Accountant(AccountantStore):
    def __init__(
        self,
        *,
        public_key: bytes,
        static_private: bytes,
        config: AccountingConfig,
        ledger: "Ledger | None",
        epoch_seconds: int,
        control: ControlPlane,
        disconnect: Callable[[bytes], None],
        rng: Callable[[int], bytes],
    ) -> None:
        self.sign_key = signing_key_from_static(static_private)
        self.sign_public = bytes(self.sign_key.verify_key)
        self.config = config
        self.ledger = ledger
        self.epoch_seconds = epoch_seconds
        self.control = control
        self.disconnect = disconnect
        self.rng = rng
        self.roles: dict[bytes, Role] = {}
        self.credits: dict[bytes, ClientCredit] = {}
        self.used: dict[bytes, UsedSession] = {}
        self.retired: list[tuple[bytes, int, int]] = []  # closed sessions' counts, not yet saved
        self.unverified: dict[tuple[bytes, str], list[int]] = {}  # not yet flushed
        self.hello_due: dict[bytes, float] = {}
        self.drops: dict[str, int] = {}
        self.receipts = 0  # receipts committed since start (the metrics)
        self.unverified_total: dict[str, int] = {}  # bytes no receipt can cover, by kind
        self.send_queue, self.receive_queue = trio.open_memory_channel[tuple[str, bytes, Any]](1024)
        self.next_tick: float | None = None
        self.next_flush: float | None = None
        self.relay_clients = False  # [relay] require_receipts: who relays through us pays
        # a peer's (datagrams lost, datagrams received) on its link, as its transport
        # counters show them (Peer.rx_loss): what a provider's invoice may add for loss
        self.link_loss: Callable[[bytes], tuple[int, int]] = lambda _key: (0, 0)
        # brings the native threads' counts in (node/dataplane_loop.py) before an invoice
        self.refresh: Callable[[], None] = no_refresh
        # the clients' credit windows in the native threads, while they run
        self.gates: CreditGates | None = None
        control.register(channel.Hello, self._on_hello)
        control.register(channel.Invoice, self._on_invoice)
        control.register(channel.ReceiptMessage, self._on_receipt)
        control.register(channel.Refusal, self._on_refusal)

    # -- configuration --------------------------------------------------------

    @property
    def served(self) -> dict[bytes, ServedSession]:
        """The current session of every client that has one."""
        return {k: c.current for k, c in self.credits.items() if c.current is not None}

    def open_sessions(self, peer_key: bytes) -> dict[bytes, ServedSession]:
        credit = self.credits.get(peer_key)
        return {} if credit is None else credit.sessions

    def set_role(self, peer_key: bytes, role: Role | None) -> None:
        credit = self.credits.get(peer_key)
        if credit is not None and role is not Role.CLIENT:
            self.credits.pop(peer_key)
            self.retired += [saved_row(s) for s in credit.sessions.values()]
        if role is not Role.PROVIDER:
            self.hello_due.pop(peer_key, None)  # no hello retry for a provider that went
        if role is None:
            self.roles.pop(peer_key, None)
            used = self.used.get(peer_key)
            if used is None or not used.refused:  # a refusal stays on record for `usage`
                self.used.pop(peer_key, None)
            return
        self.roles[peer_key] = role
        if role is Role.CLIENT and credit is None:
            self.credits[peer_key] = ClientCredit(config=self.config)
        if role is Role.PROVIDER:
            self.used[peer_key] = UsedSession(
                session_id=self.rng(16),
                key=self.sign_key,
                config=self.config,
                loss_base=self.link_loss(peer_key),
            )

    # -- data path (per packet) -------------------------------------------------

    def _count(self, peer_key: bytes, n: int, up: bool) -> bool:
        role = self.roles.get(peer_key)
        if role is None:
            return True
        if role is Role.PROVIDER:
            used = self.used[peer_key]
            if used.refused:
                self._drop("provider_refused")
                return False
            if up:
                used.own_up += n
            else:
                used.own_down += n
            return True
        if role is Role.CLIENT:
            credit = self.credits[peer_key]
            if not credit.count(n, up=up):
                self._drop("credit_exhausted" if credit.current else "credit_no_session")
                return False
            if credit.current is None:
                self._unverified(peer_key, "before_session", n, up)
            return True
        self._unverified(peer_key, "wireguard", n, up)
        return True

    def relayed_for(self, payer: bytes, n: int, up: bool) -> bool:
        """A relay frame of n datagram bytes we forward for `payer` (a relay that requires
        receipts, node/core/relay.py): the provider's credit gate, with relayed bytes as
        what is served. A peer with no role becomes a client here; False: drop it."""
        role = self.roles.get(payer)
        if role is None:
            self.set_role(payer, Role.CLIENT)
        elif role is not Role.CLIENT:
            return True  # a provider of ours or a stock peer: not billed for relaying
        return self._count(payer, n, up)

    def pays_relaying(self, peer_key: bytes) -> bool:
        """Has this peer a session with us (it said hello), so it pays for what we relay?"""
        credit = self.credits.get(peer_key)
        return credit is not None and credit.current is not None

    def relayed_via(self, relay: bytes, n: int, *, up: bool) -> bool:
        """A relay frame of n datagram bytes on our link with `relay`, sent (up) or
        delivered to us (down). A relay we pay (`provider = true`) bills those bytes, so
        they are our own count; False: we refused it, drop the frame."""
        if self.roles.get(relay) is not Role.PROVIDER:
            return True
        return self._count(relay, n, up)

    def outbound(self, peer_key: bytes, n: int) -> bool:
        """A packet of n inner bytes from the TUN to this peer. False: hold it back."""
        role = self.roles.get(peer_key)
        return self._count(peer_key, n, up=role is Role.PROVIDER)

    def inbound(self, peer_key: bytes, n: int) -> bool:
        """A packet of n inner bytes from this peer to the TUN. False: hold it back."""
        role = self.roles.get(peer_key)
        return self._count(peer_key, n, up=role is not Role.PROVIDER)

    def native_outbound(self, peer_key: bytes, n: int) -> bool:
        """n inner bytes the send thread sent to this peer; False: take it off the
        thread (a provider we refused). A client's are charged: its gate let them by."""
        return self._charged(peer_key, n, up=False) or self.outbound(peer_key, n)

    def native_inbound(self, peer_key: bytes, n: int) -> bool:
        """n inner bytes the receive thread wrote from this peer, as `native_outbound`."""
        return self._charged(peer_key, n, up=True) or self.inbound(peer_key, n)

    def _charged(self, peer_key: bytes, n: int, *, up: bool) -> bool:
        """Charge a client's bytes the threads served (False: no client with a gate)."""
        gates = self.gates
        if gates is None or not gates.charge(peer_key, n, up=up):
            return False
        if self.credits[peer_key].current is None:  # as `_count`: no receipt can cover it
            self._unverified(peer_key, "before_session", n, up)
        return True

    def _unverified(self, peer_key: bytes, kind: str, n: int, up: bool) -> None:
        row = self.unverified.setdefault((peer_key, kind), [0, 0])
        row[0 if up else 1] += n
        self.unverified_total[kind] = self.unverified_total.get(kind, 0) + n

    def held_back(self, n: int, reason: str = HELD) -> None:
        """n packets the native threads held back at a client's credit gate, under
        `reason` (HELD, or NO_SESSION before the client's hello)."""
        self._drop(reason, n)

    def _drop(self, reason: str, n: int = 1) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + n

    # -- control channel ------------------------------------------------------

    def _expect(self, peer_key: bytes, role: Role) -> None:
        if self.roles.get(peer_key) is not role:
            raise RemoteProtocolError("unexpected", "this message does not fit the peer's role")

    def _on_hello(self, peer_key: bytes, msg: channel.Hello, *, now: float) -> None:
        if self.relay_clients and peer_key not in self.roles:
            self.set_role(peer_key, Role.CLIENT)  # a peer that will pay for relaying
        self._expect(peer_key, Role.CLIENT)
        credit = self.credits[peer_key]
        if not credit.admit(msg.session_id, now=now):
            raise RemoteProtocolError("hello_rate_limited", "new sessions too fast")
        if not self._queue("hello", peer_key, msg):
            credit.refuse(msg.session_id)

    def _on_refusal(self, peer_key: bytes, msg: channel.Refusal, *, now: float) -> None:
        self._expect(peer_key, Role.CLIENT)
        log.warning(
            "client %s refused invoice %d (reason %d)", short(peer_key), msg.seq, msg.reason
        )
        self._drop("control_refusal_received")

    def _queue(self, kind: str, peer_key: bytes, item: Any) -> bool:
        try:
            self.send_queue.send_nowait((kind, peer_key, item))
        except trio.WouldBlock:
            self._drop("control_queue_full")
            return False
        return True

    def _send(self, peer_key: bytes, msg: channel.Message) -> None:
        self.control.send(peer_key, msg)

    def _on_invoice(self, peer_key: bytes, inv: channel.Invoice, *, now: float) -> None:
        self._expect(peer_key, Role.PROVIDER)
        used = self.used[peer_key]
        self.hello_due.pop(peer_key, None)
        was_refused = used.refused
        self.refresh()
        used.note_loss(*self.link_loss(peer_key))
        out = self.answer_invoice(used, inv)
        if out is None:
            return
        if isinstance(out, SignedReceipt):
            self._send(peer_key, channel.ReceiptMessage(out.wire()))
            return
        self._send(peer_key, out)
        if used.refused and not was_refused:
            log.error(
                "provider %s over-billed (%s); refusing and disconnecting",
                short(peer_key),
                used.refusal_reason,
            )
            self.disconnect(peer_key)

    def answer_invoice(
        self, used: UsedSession, inv: channel.Invoice
    ) -> SignedReceipt | channel.Refusal | None:
        """What a client answers to an invoice (None: nothing; the lab's silent client)."""
        return used.on_invoice(inv)

    def make_invoice(self, s: ServedSession, *, now: float, wall_ms: int) -> channel.Invoice:
        """The provider's next invoice for `s` (the lab's over-billing provider changes it)."""
        return s.make_invoice(now=now, wall_ms=wall_ms)

    def _on_receipt(self, peer_key: bytes, msg: channel.ReceiptMessage, *, now: float) -> None:
        self._expect(peer_key, Role.CLIENT)
        signed = verify(msg.receipt)
        s = self.open_sessions(peer_key).get(signed.receipt.session_id)
        if s is None:
            raise RemoteProtocolError("receipt_no_session")
        s.check_receipt(signed)
        self._queue("receipt", peer_key, signed)

    def handshake_completed(self, peer_key: bytes, *, now: float) -> None:
        if self.roles.get(peer_key) is Role.PROVIDER:
            self._send_hello(peer_key, now=now)

    def _send_hello(self, peer_key: bytes, *, now: float) -> None:
        used = self.used[peer_key]
        last = used.last.wire() if used.last else bytes(RECEIPT_SIZE + SIGNATURE_SIZE)
        self._send(peer_key, channel.Hello(used.session_id, used.client_key, last))
        self.hello_due[peer_key] = now + HELLO_RETRY

    # -- timers and the ledger ---------------------------------------------------

    def after_batch(self, *, now: float) -> None:
        """Send the invoices that are due (called after every data-path batch)."""
        self._arm(now)
        wall_ms = int(time.time() * 1000)
        for peer_key, s in self.served.items():
            if s.invoice_due(now=now):
                self._send(peer_key, self.make_invoice(s, now=now, wall_ms=wall_ms))

    def get_timer(self) -> float | None:
        """The next deadline: housekeeping while anything is counted, hello retries, and
        the ledger flush; None on a node that counts nothing."""
        best = None
        for due in (self.next_tick, self.next_flush, *self.hello_due.values()):
            if due is not None and (best is None or due < best):
                best = due
        return best

    def handle_timer(self, *, now: float) -> None:
        for peer_key, due in list(self.hello_due.items()):
            if now >= due:
                self._send_hello(peer_key, now=now)
        if self.next_tick is not None and now >= self.next_tick:
            self.next_tick = None
            for peer_key, credit in list(self.credits.items()):
                if credit.tick(now=now):
                    log.warning(
                        "client %s: nothing signed for %.0f s past its credit window; cut off",
                        short(peer_key),
                        self.config.cutoff,
                    )
                    self.disconnect(peer_key)
            self.after_batch(now=now)
        if self.next_flush is not None and now >= self.next_flush:
            self.next_flush = None
            self._queue("flush", b"", None)
        self._arm(now)

    def _arm(self, now: float) -> None:
        if self.next_tick is None and (self.credits or self.used):
            self.next_tick = now + TICK
        if self.next_flush is None and (self.credits or self.unverified or self.retired):
            self.next_flush = now + FLUSH_INTERVAL


def no_refresh() -> None:
    """Accounting's counts are current (no native threads count for it)."""
