"""Receipts, the provider's and client's accounting rules, Merkle proofs, reports, rewards.

Ed25519 itself is libsodium's (PyNaCl); its RFC 8032 test 1 vector is checked
here so a wrong binding would show: secret key 9d61b19d...7f60, public key
d75a9801...511a, empty message, signature e5564300...100b.
"""

import contextlib
import json
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.signing import SigningKey

from tidewire.node.core.accounting import AccountingConfig, ServedSession, UsedSession
from tidewire.node.core.rewards import YEAR, Schedule, counted_bytes, rewards
from tidewire.protocol.accounting import merkle
from tidewire.protocol.accounting.receipts import (
    RECEIPT_SIZE,
    ZERO_HASH,
    Receipt,
    check_successor,
    sign,
    signing_key_from_static,
    verify,
)
from tidewire.protocol.accounting.report import build, verify_report, verify_sequence
from tidewire.protocol.control import channel
from tidewire.protocol.errors import RemoteProtocolError

MiB = 1 << 20
CLIENT = SigningKey(bytes(range(32)))
PROVIDER = SigningKey(bytes(range(1, 33)))
SESSION = bytes(range(16))


def test_ed25519_rfc8032_test_1() -> None:
    key = SigningKey(
        bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    )
    assert (
        bytes(key.verify_key).hex()
        == "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    )
    assert key.sign(b"").signature.hex() == (
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )


def receipt(seq: int, up: int, down: int, prev: bytes = ZERO_HASH, t: int = 1_000_000) -> Receipt:
    return Receipt(
        SESSION,
        bytes(PROVIDER.verify_key),
        bytes(CLIENT.verify_key),
        seq,
        up,
        down,
        999_000,
        t + seq,
        prev,
    )


def test_encoding_is_fixed_and_round_trips() -> None:
    r = receipt(1, 10, 20)
    assert len(r.encode()) == RECEIPT_SIZE == 157
    assert Receipt.decode(r.encode()) == r
    s = sign(r, CLIENT)
    assert verify(s.wire()).receipt == r


@pytest.mark.parametrize("offset", range(0, RECEIPT_SIZE + 64, 3))
def test_any_tampered_byte_is_refused(offset: int) -> None:
    wire = bytearray(sign(receipt(1, 10, 20), CLIENT).wire())
    wire[offset] ^= 0x40
    with pytest.raises(RemoteProtocolError):
        verify(bytes(wire))


@given(data=st.binary(max_size=300))
def test_random_receipts_and_control_messages_only_raise_remote_errors(data: bytes) -> None:
    for parse in (verify, channel.decode):
        with contextlib.suppress(RemoteProtocolError):
            parse(data)


def test_control_messages_round_trip() -> None:
    for msg in (
        channel.Hello(SESSION, bytes(32)),
        channel.Invoice(SESSION, bytes(32), 3, 10, 20, 5, 6),
        channel.ReceiptMessage(sign(receipt(1, 1, 1), CLIENT).wire()),
        channel.Refusal(SESSION, 4, channel.REFUSED_OVERBILLED),
    ):
        assert channel.decode(channel.encode(msg)) == msg


def test_chain_rules() -> None:
    first = sign(receipt(1, 10, 20), CLIENT)
    check_successor(None, first)
    second = sign(receipt(2, 15, 25, prev=first.hash), CLIENT)
    check_successor(first, second)
    with pytest.raises(RemoteProtocolError, match="receipt_chain"):
        check_successor(first, sign(receipt(2, 15, 25, prev=ZERO_HASH), CLIENT))
    with pytest.raises(RemoteProtocolError, match="receipt_regressed"):
        check_successor(first, sign(receipt(2, 5, 25, prev=first.hash), CLIENT))
    with pytest.raises(RemoteProtocolError, match="receipt_sequence"):
        check_successor(second, first)  # replayed
    check_successor(first, sign(receipt(5, 30, 30, prev=bytes(32)), CLIENT), allow_gap=True)
    other = SigningKey(bytes(32))
    foreign = sign(
        replace(receipt(2, 15, 25, prev=first.hash), client_key=bytes(other.verify_key)), other
    )
    with pytest.raises(RemoteProtocolError, match="receipt_foreign"):
        check_successor(first, foreign)


def served(**kw: object) -> ServedSession:
    return ServedSession(
        session_id=SESSION,
        peer_key=bytes(32),
        client_key=bytes(CLIENT.verify_key),
        provider_key=bytes(PROVIDER.verify_key),
        session_start_ms=999_000,
        config=AccountingConfig(**kw),  # type: ignore[arg-type]
    )


def used(**kw: object) -> UsedSession:
    return UsedSession(session_id=SESSION, key=CLIENT, config=AccountingConfig(**kw))  # type: ignore[arg-type]


def test_provider_and_client_agree_and_credit_is_extended() -> None:
    p, c = served(), used()
    p.served_up = c.own_up = 3 * MiB
    p.served_down = c.own_down = 1 * MiB
    assert p.invoice_due(now=0.0)
    inv = p.make_invoice(now=0.0, wall_ms=1_000_001)
    out = c.on_invoice(inv)
    assert not isinstance(out, channel.Refusal)
    p.check_receipt(out)
    p.commit_receipt(out)
    assert p.receipted == 4 * MiB and p.unreceipted == 0


def test_provider_refuses_wrong_provider_replays_and_unsolicited_receipts() -> None:
    p, c = served(), used()
    p.served_up = c.own_up = MiB
    inv = p.make_invoice(now=0.0, wall_ms=1_000_001)
    good = c.on_invoice(inv)
    assert not isinstance(good, channel.Refusal)
    wrong = sign(replace(good.receipt, provider_key=bytes(32)), CLIENT)
    with pytest.raises(RemoteProtocolError, match="receipt_wrong_provider"):
        p.check_receipt(wrong)
    made_up = sign(replace(good.receipt, bytes_up=good.receipt.bytes_up + 1), CLIENT)
    with pytest.raises(RemoteProtocolError, match="receipt_mismatch"):
        p.check_receipt(made_up)
    p.check_receipt(good)
    p.commit_receipt(good)
    with pytest.raises(RemoteProtocolError):
        p.check_receipt(good)  # replayed


@pytest.mark.parametrize(("factor", "signs"), [(1.0, True), (1.02, True), (1.10, False)])
def test_client_signs_within_tolerance_only(factor: float, signs: bool) -> None:
    c = used()
    c.own_up, c.own_down = 100 * MiB, 10 * MiB
    inv = channel.Invoice(
        SESSION, bytes(PROVIDER.verify_key), 1, int(100 * MiB * factor), 10 * MiB, 1, 2
    )
    out = c.on_invoice(inv)
    assert isinstance(out, channel.Refusal) != signs
    assert c.refused != signs
    if not signs:  # once refused, always refused
        again = channel.Invoice(SESSION, bytes(PROVIDER.verify_key), 2, 100 * MiB, 10 * MiB, 1, 3)
        assert isinstance(c.on_invoice(again), channel.Refusal)


@pytest.mark.parametrize(
    ("lost", "factor", "signs"),
    [
        (0, 1.08, False),  # 8% over: beyond tolerance and slack with nothing lost
        (800, 1.08, True),  # 8% of the provider's datagrams never arrived
        (5000, 1.15, True),  # half lost: allowed for only up to loss_max (10%)...
        (5000, 1.20, False),  # ...so 20% over is refused still
    ],
)
def test_the_client_allows_for_what_the_counters_show_lost(
    lost: int, factor: float, signs: bool
) -> None:
    c = used()
    c.own_down = 20 * MiB
    c.note_loss(lost, 10_000)  # of 10,000 datagrams received, at the session's mean size
    assert c.lost_down == lost * 20 * MiB // 10_000
    inv = channel.Invoice(SESSION, bytes(PROVIDER.verify_key), 1, 0, int(20 * MiB * factor), 1, 2)
    assert isinstance(c.on_invoice(inv), channel.Refusal) != signs
    assert ("lost on the way" in c.refusal_reason) != signs


def test_loss_before_the_session_began_is_not_allowed_for() -> None:
    c = UsedSession(
        session_id=SESSION, key=CLIENT, config=AccountingConfig(), loss_base=(800, 10_000)
    )
    c.own_down = 20 * MiB
    c.note_loss(800, 20_000)  # nothing lost since the session began
    assert c.lost_down == 0
    c.note_loss(900, 20_000)
    assert c.lost_down == 100 * 20 * MiB // 10_000


def test_slack_covers_small_sessions() -> None:
    c = used()
    c.own_up = 1000
    inv = channel.Invoice(SESSION, bytes(32), 1, 1000 + MiB, 0, 1, 2)
    assert not isinstance(c.on_invoice(inv), channel.Refusal)


def test_lost_invoices_and_receipts_do_not_stall() -> None:
    p, c = served(invoice_interval=1.0), used()
    p.served_up = c.own_up = MiB
    p.make_invoice(now=0.0, wall_ms=1_000_001)  # lost on the way
    assert not p.invoice_due(now=0.5)
    assert p.invoice_due(now=1.0)  # nothing receipted yet: invoice again
    out = c.on_invoice(p.make_invoice(now=1.0, wall_ms=1_000_002))
    assert not isinstance(out, channel.Refusal) and out.receipt.seq == 2
    p.check_receipt(out)  # a gap in sequence numbers is fine
    p.commit_receipt(out)


@given(n=st.integers(1, 40), data=st.data())
def test_merkle_proofs(n: int, data: st.DataObject) -> None:
    leaves = [bytes([i]) * 8 for i in range(n)]
    root = merkle.root(leaves)
    i = data.draw(st.integers(0, n - 1))
    path = merkle.proof(leaves, i)
    assert merkle.verify_proof(leaves[i], path, root)
    assert not merkle.verify_proof(b"forged", path, root)
    if n > 1:
        assert not merkle.verify_proof(leaves[(i + 1) % n], path, root)


def make_report(epoch: int = 20000, length: int = 86400) -> dict[str, object]:
    start_ms = epoch * length * 1000
    base = sign(receipt(1, 10, 20, t=start_ms - 5000), CLIENT)
    latest = sign(receipt(2, 110, 220, prev=base.hash, t=start_ms + 5000), CLIENT)
    return build(
        key=PROVIDER,
        epoch=epoch,
        epoch_seconds=length,
        sessions=[(base, latest)],
        unverified=[{"peer": "x", "kind": "wireguard", "bytes_up": 5, "bytes_down": 6}],
    )


def test_report_verifies_and_counts_the_epoch_delta() -> None:
    problems, summary = verify_report(make_report())
    assert problems == []
    assert summary["verified_bytes"] == 100 + 200


def test_every_flipped_byte_of_a_report_is_caught() -> None:
    text = json.dumps(make_report(), sort_keys=True)
    caught = 0
    positions = range(0, len(text), max(1, len(text) // 150))
    for i in positions:
        ch = text[i]
        alt = "0" if ch != "0" else "1"
        mutated = text[:i] + alt + text[i + 1 :]
        try:
            doc = json.loads(mutated)
        except ValueError:
            caught += 1
            continue
        if doc == json.loads(text):
            caught += 1  # e.g. whitespace; not a change to the report
            continue
        problems, _ = verify_report(doc)
        assert problems, f"flip at {i} ({text[max(0, i - 20) : i + 20]!r}) went unnoticed"
        caught += 1
    assert caught == len(positions)


def test_reports_across_epochs_must_move_forward() -> None:
    _, s1 = verify_report(make_report(epoch=20000))
    _, s2 = verify_report(make_report(epoch=20001))
    assert verify_sequence([s1, s2]) != []  # the same receipts (seq 2) cannot be latest twice


def test_rewards_schedule_across_a_halving_boundary() -> None:
    sched = Schedule(genesis=0, halving_seconds=YEAR)
    assert sched.emitted(0, YEAR) == pytest.approx(3e9)
    assert sched.emitted(YEAR, 2 * YEAR) == pytest.approx(1.5e9)
    day = 86400
    across = sched.emitted(YEAR - day / 2, YEAR + day / 2)
    assert across == pytest.approx(3e9 / YEAR * day / 2 + 1.5e9 / YEAR * day / 2)
    assert sched.emitted(0, 40 * YEAR) == pytest.approx(6e9, rel=1e-9)
    assert sched.emitted(-YEAR, 0) == 0


def test_rewards_pro_rata_with_a_per_client_cap() -> None:
    one = [{"client_key": "a", "bytes_up": 100, "bytes_down": 0}]
    many = [{"client_key": k, "bytes_up": 25, "bytes_down": 0} for k in "abcd"]
    assert counted_bytes(one, 0.25) == 25
    assert counted_bytes(many, 0.25) == 100
    sched = Schedule(genesis=0)
    res = rewards(
        [
            {
                "provider_key": "p1",
                "epoch": 1,
                "epoch_seconds": 86400,
                "sessions": one,
                "verified_bytes": 100,
            },
            {
                "provider_key": "p2",
                "epoch": 1,
                "epoch_seconds": 86400,
                "sessions": many,
                "verified_bytes": 100,
            },
        ],
        sched,
    )
    [epoch] = res["epochs"]
    by = {p["provider_key"]: p["reward"] for p in epoch["providers"]}
    assert by["p2"] == pytest.approx(4 * by["p1"])
    assert sum(by.values()) == pytest.approx(epoch["pool"])


def test_signing_key_is_derived_and_stable() -> None:
    a = signing_key_from_static(bytes(range(32)))
    b = signing_key_from_static(bytes(range(32)))
    assert bytes(a.verify_key) == bytes(b.verify_key)
    assert bytes(signing_key_from_static(bytes(32)).verify_key) != bytes(a.verify_key)


def test_signing_key_known_answer() -> None:
    """Construction from protocol/accounting/receipts.py's docstring: the Ed25519 seed is
    BLAKE2s-256(key=x25519_private, "tidewire receipt signing key v1"). The literals were
    computed with hashlib.blake2s and nacl.signing.SigningKey(seed), not this module."""
    key = signing_key_from_static(bytes(range(32)))
    assert bytes(key) == bytes.fromhex(
        "4b0417ddf8228a7b44ab5ab013b1be3fd4390cae5eeccdc346f0106640048a38"
    )
    assert bytes(key.verify_key) == bytes.fromhex(
        "10798d51da1eee6bbe3710445313d390143d86afa4cde6ceb51a4e46375c243c"
    )
