"""A provider's credit windows in the native threads (issue 17): each client whose
packets the threads carry has a native `Credit` (dataplane/src/credit.rs), one signed
counter both threads take each packet's length from, passing packets while it is not
negative and holding the rest back as `ClientCredit.count` does (counted as the
accountant counts it: `credit_exhausted`, HELD, or `credit_no_session` before a hello).

The counter must say what `ClientCredit` would: `window - owed`, less what the threads
passed that accounting has not charged yet. So each gate remembers the target it was
last brought to (`synced`): bytes the threads passed are charged to the client's
session unconditionally when their counters are polled (they were served) and move the
remembered target by as much as the threads already moved the counter; anything else
that moves `window - owed` (a receipt in the ledger, a doubled window, packets the
Python path counted, a new session) is added to the counter at the next `sync`, which
runs at every poll of the threads' counters and after every receipt.

Invoices must not wait for a poll: at a gigabit a 4 MiB window lasts 33 ms, less than
the 50 ms between polls, and the client would be held back before it was even billed.
So each gate gets a wake mark one invoice's bytes below where it stands after a sync:
the thread that takes it past the mark writes its eventfd, and the charge, the invoice
and the next mark follow at once.
"""

from collections.abc import Callable
from typing import Any

from tidewire.node.core.accounting import ClientCredit
from tidewire.node.core.roles import Role

# what the threads count a packet held back at a gate as: a client with a session, and
# one before its hello (the gate is told which at each sync, `set_session`)
HELD = "credit_exhausted"
NO_SESSION = "credit_no_session"


def credit_gate(acct: Any, peer_key: bytes) -> Any:
    """The native credit window of a provider's client, or None: the peer is no client,
    or the threads run without gates (`acct` is the Accountant, or None)."""
    if acct is None or acct.gates is None or acct.roles.get(peer_key) is not Role.CLIENT:
        return None
    return acct.gates.gate(peer_key)


def target(credit: ClientCredit) -> int:
    """What the counter means: the bytes the client may still be served."""
    return credit.window - credit.owed


class CreditGates:
    def __init__(self, credits: dict[bytes, ClientCredit], make: Callable[[int], Any]) -> None:
        self.credits = credits
        self.make = make  # the native module's Credit
        self.gates: dict[bytes, Any] = {}
        self.synced: dict[bytes, int] = {}
        self.charged: set[bytes] = set()  # charged since their last sync: a new wake mark

    def gate(self, peer_key: bytes) -> Any:
        """The client's gate (made on first use), or None if the peer is no client."""
        credit = self.credits.get(peer_key)
        if credit is None:
            return None  # a gate it had is closed by the next `sync`
        gate = self.gates.get(peer_key)
        if gate is None:
            now = target(credit)
            gate = self.gates[peer_key] = self.make(now)
            self.synced[peer_key] = now
            gate.set_session(credit.current is not None)
            gate.wake_below(now - credit.config.invoice_bytes)
        return gate

    def charge(self, peer_key: bytes, n: int, *, up: bool) -> bool:
        """n bytes the threads served this client: counted in its session whatever the
        window says. False if the peer is no client (the caller counts it its way)."""
        credit = self.credits.get(peer_key)
        if credit is None:
            return False
        credit.charge(n, up=up)
        if peer_key in self.synced:
            self.synced[peer_key] -= n  # the counter already took them
            self.charged.add(peer_key)
        return True

    def sync(self, peer_key: bytes | None = None) -> None:
        """Bring the counters (one client's, or all) to what accounting says now."""
        keys = list(self.gates) if peer_key is None else [peer_key]
        for key in keys:
            credit, gate = self.credits.get(key), self.gates.get(key)
            if gate is None:
                continue
            if credit is None:  # no client any more: its gate is left closed
                gate.add(-(1 << 62))
                del self.gates[key], self.synced[key]
                self.charged.discard(key)
                continue
            gate.set_session(credit.current is not None)
            now = target(credit)
            delta = now - self.synced[key]
            if delta:
                gate.add(delta)
                self.synced[key] = now
            if delta or key in self.charged:
                self.charged.discard(key)
                gate.wake_below(gate.left - credit.config.invoice_bytes)
