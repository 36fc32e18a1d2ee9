"""The Accountant without root: control messages through a ControlPlane whose transmit is
a list, a ledger in tmp_path, a fake disconnect, and literal `now`s. A client that rotates
sessions without paying is cut off after one credit window in total; receipts restore
credit; a hello from a peer that is not a client is a counted drop; no served byte is lost
when a session is replaced."""

from pathlib import Path

import pytest
import trio
from nacl.signing import SigningKey

from tidewire.node.accounting import Accountant
from tidewire.node.accounting_gate import CreditGates
from tidewire.node.core import overlay
from tidewire.node.core.accounting import AccountingConfig, UsedSession
from tidewire.node.core.control_plane import ControlPlane
from tidewire.node.core.roles import Role, role_of
from tidewire.node.dataplane import load
from tidewire.node.ledger import Ledger
from tidewire.protocol.accounting.receipts import SignedReceipt
from tidewire.protocol.control import channel

MiB = 1 << 20
PROVIDER_X25519 = bytes(range(32, 64))
CLIENT_PEER = bytes(range(1, 33))  # the client's tunnel key
STOCK_PEER = bytes(range(2, 34))
CLIENT_SIGNING = SigningKey(bytes(range(3, 35)))
PACKET = 1400


class Rig:
    def __init__(self, ledger: Ledger | None, config: AccountingConfig) -> None:
        self.sent: list[tuple[bytes, bytes]] = []
        self.cut: list[bytes] = []
        self.control = ControlPlane(
            public_key=b"P" * 32, transmit=lambda k, pkt: self.sent.append((k, pkt))
        )
        self.acct = Accountant(
            public_key=b"P" * 32,
            static_private=PROVIDER_X25519,
            config=config,
            ledger=ledger,
            epoch_seconds=86400,
            control=self.control,
            disconnect=self.cut.append,
            rng=lambda n: bytes(n),
        )
        self.acct.set_role(CLIENT_PEER, Role.CLIENT)
        self.acct.set_role(STOCK_PEER, Role.STOCK)

    def deliver(self, peer: bytes, msg: channel.Message, *, now: float) -> None:
        packet = overlay.build(
            overlay.overlay_address(peer), self.control.local_overlay, channel.encode(msg)
        )
        self.control.receive(peer, packet, now=now)

    async def drain(self) -> None:
        while True:
            try:
                kind, peer, item = self.acct.receive_queue.receive_nowait()
            except trio.WouldBlock:
                return
            await self.acct.handle(kind, peer, item)

    def serve(self, n: int) -> int:
        """Offer n packets from the internet to the client; how many bytes got through."""
        return sum(PACKET for _ in range(n) if self.acct.outbound(CLIENT_PEER, PACKET))

    def invoices(self) -> list[channel.Invoice]:
        out = []
        for _, pkt in self.sent:
            parsed = overlay.parse(pkt, local=overlay.overlay_address(CLIENT_PEER))
            if parsed is not None:
                msg = channel.decode(parsed[1])
                if isinstance(msg, channel.Invoice):
                    out.append(msg)
        self.sent.clear()
        return out


def hello(n: int) -> channel.Hello:
    return channel.Hello(bytes([n]) * 16, bytes(CLIENT_SIGNING.verify_key))


async def test_rotating_sessions_without_receipts_is_cut_off_after_one_window(
    tmp_path: Path,
) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite")
    cfg = AccountingConfig(credit_window=4 * MiB, session_burst=100, cutoff=3.0)
    rig = Rig(ledger, cfg)
    got = rig.serve(100)  # before any hello
    for n in range(1, 60):  # a fresh session every 0.5 s, never a receipt
        now = n * 0.5
        rig.deliver(CLIENT_PEER, hello(n), now=now)
        await rig.drain()
        got += rig.serve(400)
        rig.acct.after_batch(now=now)
        rig.acct.handle_timer(now=now)
    assert got <= 4 * MiB + PACKET, got
    assert len(rig.acct.open_sessions(CLIENT_PEER)) == 4
    assert rig.cut and set(rig.cut) == {CLIENT_PEER}
    assert rig.acct.drops["credit_exhausted"] > 0
    await rig.acct.flush()
    # every byte it got is in the ledger: served in sessions, or unverified before a hello
    rows = ledger.usage()
    served = sum(r["served_up"] + r["served_down"] for r in rows if "session_id" in r)
    before = sum(r["unverified_up"] + r["unverified_down"] for r in rows if "kind" in r)
    assert served + before == got
    assert sum(r["verified_up"] + r["verified_down"] for r in rows if "session_id" in r) == 0


async def test_new_sessions_are_rate_limited_and_refusals_counted() -> None:
    rig = Rig(None, AccountingConfig(session_burst=3, session_interval=5.0))
    for n in range(1, 7):
        rig.deliver(CLIENT_PEER, hello(n), now=10.0)
        await rig.drain()
    assert rig.control.drops["control_hello_rate_limited"] == 3
    assert len(rig.acct.open_sessions(CLIENT_PEER)) == 3
    rig.deliver(CLIENT_PEER, hello(7), now=15.0)
    await rig.drain()
    assert hello(7).session_id in rig.acct.open_sessions(CLIENT_PEER)


async def test_receipts_restore_credit(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite")
    rig = Rig(ledger, AccountingConfig(credit_window=4 * MiB))
    rig.deliver(CLIENT_PEER, hello(1), now=0.0)
    await rig.drain()
    client = UsedSession(session_id=hello(1).session_id, key=CLIENT_SIGNING, config=rig.acct.config)
    got = rig.serve(10_000)
    assert got <= 4 * MiB + PACKET and rig.serve(1) == 0
    client.own_down = got
    rig.acct.after_batch(now=1.0)
    [inv] = rig.invoices()
    signed = client.on_invoice(inv)
    assert isinstance(signed, SignedReceipt)
    rig.deliver(CLIENT_PEER, channel.ReceiptMessage(signed.wire()), now=1.1)
    assert rig.serve(1) == 0  # not before the receipt is in the ledger
    await rig.drain()
    assert rig.serve(1) == PACKET
    [row] = [r for r in ledger.usage() if "session_id" in r]
    assert row["verified_down"] == got


async def test_a_replaced_session_keeps_its_served_bytes(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite")
    rig = Rig(ledger, AccountingConfig(credit_window=64 * MiB, session_burst=10))
    total = 0
    for n in range(1, 8):  # replaced well within one flush interval; no flush runs
        rig.deliver(CLIENT_PEER, hello(n), now=0.1 * n)
        await rig.drain()
        total += rig.serve(10)
    rows = [r for r in ledger.usage() if "session_id" in r]
    saved = sum(r["served_down"] for r in rows)
    assert len(rows) == 7 and saved == total - 10 * PACKET  # all but the current one, at once


async def test_a_bootstrap_peer_on_a_provider_is_not_a_client() -> None:
    """A gossip bootstrap node (native, no allowed IPs) on an exit: no credit, no
    per-client metrics, its hello refused, its bytes neither held nor counted."""
    rig = Rig(None, AccountingConfig())
    boot = b"\x0b" * 32
    role = role_of(provider=False, exit_enabled=True, wireguard=False, allowed_ips=[])
    rig.acct.set_role(boot, role)
    assert boot not in rig.acct.credits and boot not in rig.acct.roles
    assert rig.acct.inbound(boot, PACKET) and rig.acct.outbound(boot, PACKET)
    assert rig.acct.unverified == {}
    rig.deliver(boot, hello(3), now=0.0)
    await rig.drain()
    assert rig.control.drops["control_unexpected"] == 1 and rig.acct.served == {}


async def test_a_hello_from_a_peer_that_is_not_a_client_is_a_counted_drop() -> None:
    rig = Rig(None, AccountingConfig())
    rig.deliver(STOCK_PEER, hello(1), now=0.0)
    rig.deliver(b"\x09" * 32, hello(2), now=0.0)  # no role at all
    await rig.drain()
    assert rig.control.drops["control_unexpected"] == 2
    assert rig.acct.open_sessions(STOCK_PEER) == {} and rig.acct.served == {}


async def test_a_provider_removed_before_it_answered_our_hello_is_forgotten() -> None:
    """A client's hello to a provider is retried until an invoice comes; a provider that
    dies first (a standby exit killed) and is removed leaves no retry behind, so the
    timer does not look for its gone session (this crashed the client's daemon)."""
    rig = Rig(None, AccountingConfig())
    provider = b"\x0c" * 32
    rig.acct.set_role(provider, Role.PROVIDER)
    rig.acct.handshake_completed(provider, now=0.0)
    assert provider in rig.acct.hello_due
    rig.acct.set_role(provider, None)  # Peers.remove
    assert provider not in rig.acct.hello_due
    rig.sent.clear()
    rig.acct.handle_timer(now=60.0)  # past the hello retry
    assert [k for k, _ in rig.sent if k == provider] == []


async def test_a_client_allows_for_the_loss_its_providers_counters_show() -> None:
    """The link's counts of the provider's datagrams reach the client's check of each
    invoice, from where they stood when the session began: 8% of the datagrams since
    then skipped, an invoice 7% over the client's count is signed; the next, 20% over
    (beyond loss_max), is refused."""
    rig = Rig(None, AccountingConfig(tolerance=0.0, slack=0))
    provider = b"\x0d" * 32
    link = {provider: (500, 9000)}  # lost and received before this session
    rig.acct.link_loss = lambda key: link.get(key, (0, 0))
    rig.acct.set_role(provider, Role.PROVIDER)
    used = rig.acct.used[provider]
    for _ in range(1000):
        assert rig.acct.inbound(provider, PACKET)
    link[provider] = (580, 10_000)
    own = 1000 * PACKET

    def answers(seq: int, billed: int) -> channel.Message:
        rig.sent.clear()
        inv = channel.Invoice(used.session_id, b"Q" * 32, seq, 0, billed, 1, 2)
        rig.deliver(provider, inv, now=float(seq))
        [(_, pkt)] = [(k, p) for k, p in rig.sent if k == provider]
        parsed = overlay.parse(pkt, local=overlay.overlay_address(provider))
        assert parsed is not None
        return channel.decode(parsed[1])

    assert isinstance(answers(1, int(own * 1.07)), channel.ReceiptMessage)
    assert isinstance(answers(2, int(own * 1.20)), channel.Refusal)
    assert "lost on the way" in used.refusal_reason


async def test_bytes_the_threads_served_are_charged_and_a_receipt_reopens_the_gate(
    tmp_path: Path,
) -> None:
    native = load()
    if native is None or not hasattr(native, "Credit"):
        pytest.skip("tidewire._dataplane with credit gates is not built")
    ledger = Ledger(tmp_path / "ledger.sqlite")
    rig = Rig(ledger, AccountingConfig(credit_window=4 * MiB))
    rig.acct.gates = CreditGates(rig.acct.credits, native.Credit)
    gate = rig.acct.gates.gate(CLIENT_PEER)
    gate.add(-1000)  # the receive thread took 1,000 bytes before any hello: unverified
    assert rig.acct.native_inbound(CLIENT_PEER, 1000)
    assert rig.acct.unverified_total == {"before_session": 1000}
    rig.deliver(CLIENT_PEER, hello(1), now=0.0)
    await rig.drain()
    client = UsedSession(session_id=hello(1).session_id, key=CLIENT_SIGNING, config=rig.acct.config)
    served = 0
    while gate.left >= 0:  # the threads: pass while not negative, take, then charged
        gate.add(-PACKET)
        assert rig.acct.native_outbound(CLIENT_PEER, PACKET)
        served += PACKET
    rig.acct.gates.sync()
    assert gate.left == 4 * MiB - 1000 - served < 0
    client.own_down = served
    rig.acct.after_batch(now=1.0)
    [inv] = rig.invoices()
    assert inv.bytes_down == served  # what the threads served is billed
    signed = client.on_invoice(inv)
    assert isinstance(signed, SignedReceipt)
    rig.deliver(CLIENT_PEER, channel.ReceiptMessage(signed.wire()), now=1.1)
    await rig.drain()
    assert gate.left == 4 * MiB - 1000 >= 0  # in the ledger: the gate is open again at once
    assert rig.acct.native_inbound(STOCK_PEER, 10)  # a stock peer: counted, no gate
