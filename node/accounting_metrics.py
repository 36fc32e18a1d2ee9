"""The accounting's families in the metrics registry: read-only views of what it keeps.

Nothing here counts anything new on the packet path: each family reads the
accountant's objects when a scrape or `status` asks. Per-client families are labelled
by the client's tunnel key (bounded by the configured peers); a client's verified and
unverified bytes are those of its current session, since session counts start anew
with each session. Bytes no receipt can ever cover (stock WireGuard peers, traffic
before a session) are a counter by kind.

An estimate of the epoch's reward is not here: a provider's share of an epoch's pool
depends on every other provider's verified bytes, which one node does not know
(`tidewire rewards` computes it from the epoch's reports).
"""

from collections.abc import Callable, Iterable

from tidewire.node.accounting import Accountant
from tidewire.node.core.accounting import ClientCredit, ServedSession
from tidewire.node.metrics import Registry
from tidewire.protocol.keys import encode_key

Rows = Iterable[tuple[str, float]]


def _verified(s: ServedSession | None) -> int:
    if s is None or s.last is None:
        return 0
    return s.last.receipt.bytes_up + s.last.receipt.bytes_down


def register(reg: Registry, acct: Accountant) -> None:
    def per_client(read: Callable[[ClientCredit], float]) -> Rows:
        return [(encode_key(k), read(c)) for k, c in acct.credits.items()]

    reg.value(
        "tidewire_receipts_total",
        "Client-signed receipts committed (to the ledger, on a provider).",
        lambda: acct.receipts,
        kind="counter",
    )
    reg.labelled(
        "tidewire_client_verified_bytes",
        "Bytes the client's receipts cover, in its current session.",
        label="client",
        read=lambda: per_client(lambda c: _verified(c.current)),
        kind="gauge",
    )
    reg.labelled(
        "tidewire_client_unverified_bytes",
        "Bytes served to the client in its current session that no receipt covers yet.",
        label="client",
        read=lambda: per_client(
            lambda c: 0
            if c.current is None
            else max(0, c.current.served_up + c.current.served_down - _verified(c.current))
        ),
        kind="gauge",
    )
    reg.labelled(
        "tidewire_client_credit_owed_bytes",
        "Bytes served to the client that no receipt covers, over all its sessions.",
        label="client",
        read=lambda: per_client(lambda c: c.owed),
        kind="gauge",
    )
    reg.labelled(
        "tidewire_client_credit_window_bytes",
        "The credit window the client may owe before it is held back.",
        label="client",
        read=lambda: per_client(lambda c: c.window),
        kind="gauge",
    )
    reg.labelled(
        "tidewire_client_cut_off",
        "1 if the client is cut off for not signing receipts, else 0.",
        label="client",
        read=lambda: per_client(lambda c: int(c.cut_off)),
        kind="gauge",
    )
    reg.counters(
        "tidewire_unverified_bytes_total",
        "Bytes carried that no receipt can cover (stock WireGuard peers, before a session).",
        label="kind",
        source=acct.unverified_total,
    )
