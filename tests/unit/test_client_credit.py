"""Per-client credit (node/core/accounting.py ClientCredit): the debt of every session a
client opened counts against one window, new sessions are rate-limited, old ones closed
with their debt kept, receipts restore credit. Literal byte counts and times throughout."""

from nacl.signing import SigningKey

from tidewire.node.core.accounting import (
    AccountingConfig,
    ClientCredit,
    ServedSession,
    UsedSession,
)
from tidewire.protocol.accounting.receipts import SignedReceipt

MiB = 1 << 20
CLIENT = SigningKey(bytes(range(32)))
PROVIDER = SigningKey(bytes(range(1, 33)))


def session(n: int, config: AccountingConfig) -> ServedSession:
    return ServedSession(
        session_id=bytes([n]) * 16,
        peer_key=bytes(32),
        client_key=bytes(CLIENT.verify_key),
        provider_key=bytes(PROVIDER.verify_key),
        session_start_ms=1_000_000,
        config=config,
    )


def pay(credit: ClientCredit, s: ServedSession, *, now: float) -> None:
    """The client signs the invoice for everything served so far; it is committed."""
    c = UsedSession(session_id=s.session_id, key=CLIENT, config=s.config)
    c.own_up, c.own_down = s.served_up, s.served_down
    if s.last is not None:
        c.last = s.last
    out = c.on_invoice(s.make_invoice(now=now, wall_ms=2_000_000 + int(now)))
    assert isinstance(out, SignedReceipt)
    s.check_receipt(out)
    credit.commit_receipt(s, out)


def test_bytes_before_any_hello_count_against_the_window() -> None:
    credit = ClientCredit(config=AccountingConfig(credit_window=4 * MiB))
    assert credit.count(4 * MiB, up=True)  # exactly at the window: still served
    assert credit.pre_hello == 4 * MiB and credit.owed == 4 * MiB
    assert credit.count(1, up=True)  # the packet that crosses it
    assert not credit.count(1, up=True) and credit.owed == 4 * MiB + 1


def test_a_new_session_does_not_reset_the_debt() -> None:
    cfg = AccountingConfig(credit_window=4 * MiB, session_burst=10)
    credit = ClientCredit(config=cfg)
    for n in range(10):
        assert credit.admit(bytes([n]) * 16, now=float(n))
        credit.adopt(session(n, cfg))
        while credit.count(65536, up=False):
            pass
    # one window (plus the packet that crossed it) in total across 10 sessions
    assert credit.owed == 4 * MiB + 65536
    assert not credit.count(1, up=False)


def test_old_sessions_are_closed_with_their_debt_kept() -> None:
    cfg = AccountingConfig(credit_window=4 * MiB, max_sessions=4, session_burst=10)
    credit = ClientCredit(config=cfg)
    closed: list[ServedSession] = []
    for n in range(6):
        assert credit.admit(bytes([n]) * 16, now=0.0)
        closed += credit.adopt(session(n, cfg))
        assert credit.count(100_000, up=True)
    assert len(credit.sessions) == 4
    assert [s.session_id[0] for s in closed] == [0, 1]
    assert credit.closed_unpaid == 200_000 and credit.owed == 600_000


def test_new_sessions_are_rate_limited_after_a_burst() -> None:
    cfg = AccountingConfig(session_burst=3, session_interval=5.0)
    credit = ClientCredit(config=cfg)
    assert [credit.admit(bytes([n]) * 16, now=100.0) for n in range(4)] == [
        True,
        True,
        True,
        False,
    ]
    assert credit.admit(bytes([0]) * 16, now=100.0)  # one already admitted: no new token
    assert not credit.admit(bytes([5]) * 16, now=104.9)
    assert credit.admit(bytes([5]) * 16, now=105.0)  # one token back after 5 s
    assert not credit.admit(bytes([6]) * 16, now=109.0)


def test_receipts_restore_credit_and_grow_the_window() -> None:
    cfg = AccountingConfig(credit_window=4 * MiB, credit_max=8 * MiB)
    credit = ClientCredit(config=cfg)
    s = session(1, cfg)
    credit.adopt(s)
    while credit.count(MiB, up=True):
        pass
    assert credit.owed == 5 * MiB
    pay(credit, s, now=1.0)
    assert credit.owed == 0 and credit.allowed()
    for i in range(15):
        assert credit.count(MiB, up=True)
        pay(credit, s, now=2.0 + i)
    assert credit.good_receipts == 16 and credit.window == 8 * MiB


def test_a_receipt_for_an_earlier_open_session_pays_its_debt() -> None:
    cfg = AccountingConfig(credit_window=4 * MiB)
    credit = ClientCredit(config=cfg)
    first, second = session(1, cfg), session(2, cfg)
    credit.adopt(first)
    assert credit.count(3 * MiB, up=True)
    credit.adopt(second)
    assert credit.count(2 * MiB, up=True)
    assert credit.owed == 5 * MiB and not credit.allowed()
    pay(credit, first, now=1.0)
    assert credit.owed == 2 * MiB and credit.allowed()


def test_cut_off_after_the_cutoff_over_the_window_and_again_while_over() -> None:
    credit = ClientCredit(config=AccountingConfig(credit_window=4 * MiB, cutoff=30.0))
    s = session(1, credit.config)
    credit.adopt(s)
    assert credit.count(4 * MiB + 1, up=False)
    assert credit.tick(now=100.0) is False  # over the window from 100 s
    assert credit.tick(now=129.999) is False
    assert credit.tick(now=130.0) is True and credit.cut_off and s.cut_off
    assert credit.tick(now=159.0) is False
    assert credit.tick(now=160.0) is True  # still over: cut off again
    assert not credit.count(1, up=False)
