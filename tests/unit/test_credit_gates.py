"""The native credit gates' bookkeeping (node/accounting_gate.py) over the native
`Credit` counter (dataplane/src/credit.rs): whatever the threads pass, the Python path
counts, receipts free and windows grow, once the threads' bytes are charged and the
gates synced the counter is the client's `window - owed`, as `ClientCredit.allowed`
reads it; a gate whose client is gone is closed.
"""

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidewire.node.accounting_gate import CreditGates, target
from tidewire.node.core.accounting import AccountingConfig, ClientCredit
from tidewire.node.dataplane import load

native = load()
pytestmark = pytest.mark.skipif(
    native is None or not hasattr(native, "Credit"),
    reason="tidewire._dataplane with credit gates is not built (scripts/setup)",
)
KEY = b"c" * 32
CONFIG = AccountingConfig(credit_window=10_000, credit_max=80_000)


def gates() -> tuple[CreditGates, ClientCredit, Any]:
    assert native is not None
    credit = ClientCredit(config=CONFIG)
    g = CreditGates({KEY: credit}, native.Credit)
    return g, credit, g.gate(KEY)


def test_a_gate_opens_at_the_window_and_follows_what_accounting_says() -> None:
    g, credit, gate = gates()
    assert gate.left == 10_000 and g.gate(KEY) is gate  # made once
    gate.add(-4_000)  # the threads passed 4,000 bytes (credit.rs's take)
    g.sync()
    assert gate.left == 6_000  # not yet charged: the counter keeps what it took
    assert g.charge(KEY, 4_000, up=True) and credit.pre_hello == 4_000
    g.sync()
    assert gate.left == 6_000 == target(credit)  # charged once, taken once
    assert credit.count(3_000, up=False)  # the Python path counted a packet
    g.sync()
    assert gate.left == 3_000
    credit.window *= 2  # good standing
    credit.pre_hello -= 2_000  # (as a receipt in the ledger lowers what is owed)
    g.sync()
    assert gate.left == 15_000 == target(credit)
    assert not g.charge(b"x" * 32, 10, up=True)  # no client: counted elsewhere


def test_a_gate_whose_client_is_gone_is_closed() -> None:
    g, _credit, gate = gates()
    del g.credits[KEY]
    g.sync()
    assert gate.left < 0 and KEY not in g.gates
    assert g.gate(KEY) is None


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["thread", "python", "charge", "free", "grow"]), st.integers(1, 9000)
        ),
        max_size=40,
    )
)
def test_after_charging_and_syncing_the_counter_is_window_less_owed(
    ops: list[tuple[str, int]],
) -> None:
    g, credit, gate = gates()
    uncharged = 0
    for op, n in ops:
        if op == "thread" and gate.left >= 0:  # a packet passes only while not negative
            gate.add(-n)
            uncharged += n
        elif op == "python":
            credit.count(n, up=bool(n % 2))
        elif op == "charge" and uncharged:
            part = min(n, uncharged)
            g.charge(KEY, part, up=True)
            uncharged -= part
        elif op == "free":
            credit.pre_hello -= min(n, credit.pre_hello)
        elif op == "grow":
            credit.window = min(CONFIG.credit_max, credit.window * 2)
        if n % 3 == 0:
            g.sync()
    g.charge(KEY, uncharged, up=True)
    g.sync()
    assert gate.left == target(credit)
    assert (gate.left >= 0) == credit.allowed()
