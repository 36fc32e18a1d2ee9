"""Accounting rules, sans I/O: what a provider bills, what a client will sign, and credit.

Both ends count the same thing, inner IP bytes in the data path: `up` is what the
client sends through the provider, `down` what the provider sends to the client.

Provider (`ServedSession`, one per client session): counts what it serves, sends
an invoice every `invoice_bytes` or `invoice_interval` of traffic, and checks each
receipt against the invoice it answers and the chain before it.

Credit belongs to the client, not to a session (`ClientCredit`, one per tunnel peer
key, which the link authenticates): what it owes is its bytes before any hello, plus
the unreceipted bytes of every session it opened (the last `max_sessions` open in
memory, older ones closed with their debt kept), and it is served only while that
is at most `window` beyond what receipts safely in the ledger cover. Opening a new
session never resets the debt; new sessions are rate-limited (a bucket of
`session_burst`, one more every `session_interval` seconds). The window starts at
`credit_window` and doubles after every 16 receipts in good standing, up to
`credit_max`. Past it the client's traffic is held back (dropped and counted); after
`cutoff` seconds of that, the client is cut off (and again every `cutoff` while it
stays over).

Client (`UsedSession`, one per provider): counts what it sends and receives, and
signs an invoice only if neither direction exceeds its own count by more than
`tolerance` plus `slack`; otherwise it refuses and stops using the provider. What the
provider sent and the path lost on the way (a relay's full queue, a lossy link) the
provider counted and the client did not: the provider's transport counters show it, as
the counters it skipped (`lost_down`, an estimate in bytes from the shell), and the
client allows for that too, up to `loss_max` of its own count, so a long transfer over
a path losing a few percent is not refused as over-billed once the loss outgrows the
slack, while a provider skipping counters to bill more gains at most `loss_max`.
"""

from dataclasses import dataclass, field

from nacl.signing import SigningKey

from tidewire.protocol.accounting.receipts import (
    ZERO_HASH,
    Receipt,
    SignedReceipt,
    check_successor,
    sign,
)
from tidewire.protocol.control.channel import (
    REFUSED_OVERBILLED,
    REFUSED_REGRESSED,
    Invoice,
    Refusal,
)
from tidewire.protocol.errors import RemoteProtocolError

MiB = 1 << 20


@dataclass(frozen=True)
class AccountingConfig:
    credit_window: int = 4 * MiB
    credit_max: int = 64 * MiB
    invoice_bytes: int = 1 * MiB
    invoice_interval: float = 1.0
    cutoff: float = 30.0
    tolerance: float = 0.02
    slack: int = 1 * MiB
    loss_max: float = 0.10  # the most of its own count a client allows for path loss
    max_pending_invoices: int = 64
    max_sessions: int = 4  # open sessions kept in memory per client
    session_burst: int = 3  # new sessions a client may open at once
    session_interval: float = 5.0  # then one more new session per this many seconds


@dataclass
class ServedSession:
    """The provider's side of one client session."""

    session_id: bytes
    peer_key: bytes  # the client's X25519 key (the tunnel peer)
    client_key: bytes  # the client's Ed25519 key (from its hello)
    provider_key: bytes  # our Ed25519 key
    session_start_ms: int
    config: AccountingConfig
    served_up: int = 0
    served_down: int = 0
    last: SignedReceipt | None = None
    next_seq: int = 1
    pending: dict[int, Invoice] = field(default_factory=dict)
    invoiced_total: int = 0
    last_invoice_at: float | None = None
    cut_off: bool = False  # its client was cut off while this was its session (for display)

    def __post_init__(self) -> None:
        if self.last is not None:
            self.next_seq = self.last.receipt.seq + 1
            self.served_up = max(self.served_up, self.last.receipt.bytes_up)
            self.served_down = max(self.served_down, self.last.receipt.bytes_down)
            self.invoiced_total = self.last.receipt.total

    @property
    def receipted(self) -> int:
        return 0 if self.last is None else self.last.receipt.total

    @property
    def unreceipted(self) -> int:
        return self.served_up + self.served_down - self.receipted

    def invoice_due(self, *, now: float) -> bool:
        """Every `invoice_bytes` of new traffic, or `invoice_interval` after the last invoice
        while anything is new or still unreceipted (so a lost invoice or receipt is replaced)."""
        total = self.served_up + self.served_down
        if total - self.invoiced_total >= self.config.invoice_bytes:
            return True
        waited = (
            self.last_invoice_at is None
            or now - self.last_invoice_at >= self.config.invoice_interval
        )
        return waited and (total > self.invoiced_total or total > self.receipted)

    def make_invoice(self, *, now: float, wall_ms: int) -> Invoice:
        inv = Invoice(
            session_id=self.session_id,
            provider_key=self.provider_key,
            seq=self.next_seq,
            bytes_up=self.served_up,
            bytes_down=self.served_down,
            session_start_ms=self.session_start_ms,
            time_ms=wall_ms,
        )
        self.pending[inv.seq] = inv
        while len(self.pending) > self.config.max_pending_invoices:
            del self.pending[min(self.pending)]
        self.next_seq += 1
        self.invoiced_total = self.served_up + self.served_down
        self.last_invoice_at = now
        return inv

    def check_receipt(self, signed: SignedReceipt) -> None:
        """Raise RemoteProtocolError unless `signed` answers an invoice of ours and extends
        the chain."""
        r = signed.receipt
        if r.session_id != self.session_id:
            raise RemoteProtocolError("receipt_foreign", "not this session")
        if r.provider_key != self.provider_key:
            raise RemoteProtocolError("receipt_wrong_provider")
        if r.client_key != self.client_key:
            raise RemoteProtocolError("receipt_wrong_client")
        inv = self.pending.get(r.seq)
        if inv is None:
            raise RemoteProtocolError("receipt_unexpected", f"no invoice {r.seq} outstanding")
        if (r.bytes_up, r.bytes_down, r.time_ms, r.session_start_ms) != (
            inv.bytes_up,
            inv.bytes_down,
            inv.time_ms,
            inv.session_start_ms,
        ):
            raise RemoteProtocolError("receipt_mismatch", "does not match its invoice")
        if self.last is not None and r.seq <= self.last.receipt.seq:
            raise RemoteProtocolError("receipt_replayed")
        # Invoices and receipts can be lost, so sequence numbers may skip; where they do not,
        # the receipt must chain to the previous one by hash.
        check_successor(self.last, signed, allow_gap=True)

    def commit_receipt(self, signed: SignedReceipt) -> None:
        """Called once the receipt is durably in the ledger (through ClientCredit)."""
        self.last = signed
        for seq in [s for s in self.pending if s <= signed.receipt.seq]:
            del self.pending[seq]


CLOSED_REMEMBERED = 16  # closed sessions whose debt is remembered by id (a reopen moves it back)


@dataclass
class ClientCredit:
    """The provider's credit for one client (its tunnel peer key), across all its sessions."""

    config: AccountingConfig
    sessions: dict[bytes, ServedSession] = field(default_factory=dict)  # open, oldest first
    current: ServedSession | None = None  # the session new traffic is counted in
    pre_hello: int = 0  # bytes served before any hello: never covered by a receipt
    closed_unpaid: int = 0  # unreceipted bytes of sessions closed for good
    closed: dict[bytes, int] = field(default_factory=dict)  # recent closed id -> its debt
    window: int = 0
    good_receipts: int = 0
    tokens: float = -1.0
    tokens_at: float | None = None
    opening: set[bytes] = field(default_factory=set)  # admitted, not yet adopted
    over_since: float | None = None
    cut_off: bool = False
    _others: int = 0  # unreceipted bytes of the open sessions other than `current`

    def __post_init__(self) -> None:
        self.window = self.window or self.config.credit_window
        if self.tokens < 0:
            self.tokens = float(self.config.session_burst)

    @property
    def owed(self) -> int:
        """Bytes served to this client that no receipt in the ledger covers."""
        current = self.current.unreceipted if self.current is not None else 0
        return self.pre_hello + self.closed_unpaid + self._others + current

    def allowed(self) -> bool:
        """May one more packet be served? (Checked per packet in the data path.)"""
        return self.owed <= self.window

    def count(self, n: int, *, up: bool) -> bool:
        """Count a packet of n bytes if credit allows it; False: hold it back."""
        if not self.allowed():
            return False
        self.charge(n, up=up)
        return True

    def charge(self, n: int, *, up: bool) -> None:
        """Count n bytes served, whatever the window (the native threads passed them
        under their own copy of it, node/accounting_gate.py)."""
        s = self.current
        if s is None:
            self.pre_hello += n
        elif up:
            s.served_up += n
        else:
            s.served_down += n

    def admit(self, session_id: bytes, *, now: float) -> bool:
        """A hello for `session_id`: True if it may be opened (or is already open). A new
        session takes a token from the client's bucket; without one the hello is refused."""
        if session_id in self.sessions or session_id in self.opening:
            return True
        if self.tokens_at is not None:
            refill = max(0.0, now - self.tokens_at) / self.config.session_interval
            self.tokens = min(float(self.config.session_burst), self.tokens + refill)
        self.tokens_at = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        self.opening.add(session_id)
        return True

    def adopt(self, s: ServedSession) -> list[ServedSession]:
        """Make `s` the current session (opened, resumed, or switched back to). Returns the
        sessions closed to keep at most `max_sessions` open; their debt stays."""
        self.opening.discard(s.session_id)
        known = self.sessions.pop(s.session_id, None)
        if known is not None:
            s = known
        else:
            self.closed_unpaid -= self.closed.pop(s.session_id, 0)  # reopened: counted in s now
        self.sessions[s.session_id] = s
        self.current = s
        s.cut_off = self.cut_off
        closed = []
        while len(self.sessions) > self.config.max_sessions:
            old = self.sessions.pop(next(iter(self.sessions)))
            debt = max(0, old.unreceipted)
            self.closed_unpaid += debt
            self.closed[old.session_id] = debt
            while len(self.closed) > CLOSED_REMEMBERED:
                del self.closed[next(iter(self.closed))]
            closed.append(old)
        self._recount()
        return closed

    def refuse(self, session_id: bytes) -> None:
        """An admitted session that could not be opened."""
        self.opening.discard(session_id)

    def commit_receipt(self, s: ServedSession, signed: SignedReceipt) -> None:
        """Called once the receipt is durably in the ledger: extend credit."""
        s.commit_receipt(signed)
        self._recount()
        self.good_receipts += 1
        if self.good_receipts % 16 == 0:
            self.window = min(self.config.credit_max, self.window * 2)
        if self.allowed():
            self.over_since = None

    def _recount(self) -> None:
        self._others = sum(
            max(0, s.unreceipted) for s in self.sessions.values() if s is not self.current
        )

    def tick(self, *, now: float) -> bool:
        """Track time over the window; True when the client must be cut off (once per
        `cutoff` while it stays over)."""
        if self.allowed():
            self.over_since = None
            if self.cut_off:
                self.cut_off = False
                for s in self.sessions.values():
                    s.cut_off = False
            return False
        if self.over_since is None:
            self.over_since = now
        if now - self.over_since >= self.config.cutoff:
            self.over_since = now
            self.cut_off = True
            if self.current is not None:
                self.current.cut_off = True
            return True
        return False


@dataclass
class UsedSession:
    """The client's side of its session with one provider."""

    session_id: bytes
    key: SigningKey
    config: AccountingConfig
    own_up: int = 0
    own_down: int = 0
    provider_key: bytes | None = None
    last: SignedReceipt | None = None
    refused: bool = False
    refusal_reason: str = ""
    invoices_seen: int = 0
    lost_down: int = 0  # bytes the provider sent that never arrived, as its counters show
    loss_base: tuple[int, int] = (0, 0)  # the link's (lost, received) at the session's start

    @property
    def client_key(self) -> bytes:
        return bytes(self.key.verify_key)

    def note_loss(self, lost: int, received: int) -> None:
        """The link's running counts (datagrams skipped, datagrams received) for the
        provider: the lost ones since the session began, at the session's mean size."""
        lost -= self.loss_base[0]
        received -= self.loss_base[1]
        self.lost_down = lost * self.own_down // received if lost > 0 and received > 0 else 0

    def limit(self, own: int, lost: int = 0) -> int:
        allowance = min(lost, int(own * self.config.loss_max))
        return int(own * (1 + self.config.tolerance)) + self.config.slack + allowance

    def on_invoice(self, inv: Invoice) -> SignedReceipt | Refusal:
        """Sign the invoice if it is within tolerance of our own counts; refuse otherwise."""
        if inv.session_id != self.session_id:
            raise RemoteProtocolError("invoice_foreign_session")
        if self.refused:
            return Refusal(self.session_id, inv.seq, REFUSED_OVERBILLED)
        if self.provider_key is not None and inv.provider_key != self.provider_key:
            raise RemoteProtocolError("invoice_provider_changed")
        self.invoices_seen += 1
        prev = self.last.receipt if self.last else None
        if prev is not None and inv.seq <= prev.seq:
            raise RemoteProtocolError("invoice_stale", f"seq {inv.seq} after {prev.seq}")
        if prev is not None and (inv.bytes_up < prev.bytes_up or inv.bytes_down < prev.bytes_down):
            return Refusal(self.session_id, inv.seq, REFUSED_REGRESSED)
        if inv.bytes_up > self.limit(self.own_up) or inv.bytes_down > self.limit(
            self.own_down, self.lost_down
        ):
            self.refused = True
            self.refusal_reason = (
                f"invoice {inv.seq} bills {inv.bytes_up} up / {inv.bytes_down} down; "
                f"we counted {self.own_up} / {self.own_down}, {self.lost_down} lost on the way"
            )
            return Refusal(self.session_id, inv.seq, REFUSED_OVERBILLED)
        self.provider_key = inv.provider_key
        receipt = Receipt(
            session_id=self.session_id,
            provider_key=inv.provider_key,
            client_key=self.client_key,
            seq=inv.seq,
            bytes_up=inv.bytes_up,
            bytes_down=inv.bytes_down,
            session_start_ms=inv.session_start_ms,
            time_ms=inv.time_ms,
            prev_hash=ZERO_HASH if self.last is None else self.last.hash,
        )
        signed = sign(receipt, self.key)
        self.last = signed
        return signed
