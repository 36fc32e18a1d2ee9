"""A relay paid like a provider, without root: the relay's Accountant with its ledger in
tmp_path, the client's Accountant, their two control planes wired to each other, the
relay core between them, and literal `now`s (virtual time).

The client C relays through R to E. R charges the frames of the pair C-E to C, the end
that opened it (both directions); C counts the frames on its link with R, which it
marked `provider = true`; invoices, receipts, the credit window and the cut-off are the
provider's (node/core/accounting.py), and the receipts land in R's ledger with C as the
client."""

import dataclasses
from pathlib import Path
from typing import Any

import trio

from tidewire.node.accounting import Accountant
from tidewire.node.core import overlay
from tidewire.node.core.accounting import AccountingConfig
from tidewire.node.core.control_plane import ControlPlane
from tidewire.node.core.relay import Forward, Relay, RelayConfig
from tidewire.node.core.roles import Role
from tidewire.node.ledger import Ledger
from tidewire.node.usage import usage
from tidewire.protocol.control import channel
from tidewire.protocol.control import relay as wire
from tidewire.protocol.keys import encode_key

from ..unit.helpers import keypair

(C_PRIV, C), (R_PRIV, R), (E_PRIV, E) = (keypair("relay-pay-" + n) for n in "cre")
MiB = 1 << 20
DATAGRAM = 1200


def frame(sender: bytes, to: bytes, fill: bytes) -> bytes:
    """A relay frame from the end `sender` to the end `to` through R, on the link with R."""
    return wire.build(
        overlay.overlay_address(sender),
        overlay.overlay_address(R),
        ttl=8,
        destination=to,
        source=sender,
        datagram=fill * DATAGRAM,
    )


class Rig:
    """R (a paid relay) and C (its client), each with an accountant and a control plane."""

    def __init__(self, tmp_path: Path, config: AccountingConfig, *, pay: bool = True) -> None:
        self.cut: list[bytes] = []
        self.wire: list[tuple[str, bytes]] = []  # control packets in flight: (to, packet)
        self.receipts_lost = False  # C stops paying: its receipts never reach R
        self.ledger = Ledger(tmp_path / "ledger.sqlite")
        self.r_control = ControlPlane(public_key=R, transmit=lambda k, p: self._out("c", p))
        self.c_control = ControlPlane(public_key=C, transmit=lambda k, p: self._out("r", p))
        self.r_acct = self._accountant(R, R_PRIV, self.r_control, self.ledger, config)
        self.r_acct.relay_clients = True  # [relay] require_receipts
        self.c_acct = self._accountant(C, C_PRIV, self.c_control, None, config)
        if pay:
            self.c_acct.set_role(R, Role.PROVIDER)  # C's peer R: provider = true
        self.relay = Relay(
            public_key=R,
            local_overlay=overlay.overlay_address(R),
            config=RelayConfig(enabled=True, require_receipts=True, pair_rate=None),
            next_hop=lambda k: k if k in (C, E) else None,
            trusted=lambda k: False,
            overlay_of=overlay.overlay_address,
            charge=self.r_acct.relayed_for,
            paying=self.r_acct.pays_relaying,
        )
        self.relayed = 0  # datagram bytes R forwarded, both directions

    def _accountant(
        self,
        me: bytes,
        private: bytes,
        control: ControlPlane,
        ledger: Ledger | None,
        config: AccountingConfig,
    ) -> Accountant:
        return Accountant(
            public_key=me,
            static_private=private,
            config=config,
            ledger=ledger,
            epoch_seconds=86400,
            control=control,
            disconnect=self.cut.append,
            rng=lambda n: me[:n],
        )

    def _out(self, to: str, packet: bytes) -> None:
        self.wire.append((to, packet))

    async def pump(self, *, now: float) -> None:
        """Deliver the control packets in flight (and their answers) and the disk work."""
        while self.wire:
            to, packet = self.wire.pop(0)
            if to == "r":
                if not self.receipts_lost:
                    self.r_control.receive(C, packet, now=now)
            else:
                self.c_control.receive(R, packet, now=now)
            for acct in (self.r_acct, self.c_acct):
                while True:
                    try:
                        kind, peer, item = acct.receive_queue.receive_nowait()
                    except trio.WouldBlock:
                        break
                    await acct.handle(kind, peer, item)

    def up(self, n: int, *, now: float) -> int:
        """C sends n datagrams to E through R; how many R forwarded."""
        done = 0
        for _ in range(n):
            if not self.c_acct.relayed_via(R, DATAGRAM, up=True):
                continue
            if isinstance(self.relay.receive(C, frame(C, E, b"u"), now=now), Forward):
                done += 1
                self.relayed += DATAGRAM
        return done

    def down(self, n: int, *, now: float) -> int:
        """E sends n datagrams to C through R; how many reached C."""
        done = 0
        for _ in range(n):
            if isinstance(self.relay.receive(E, frame(E, C, b"d"), now=now), Forward):
                self.relayed += DATAGRAM
                assert self.c_acct.relayed_via(R, DATAGRAM, up=False)
                done += 1
        return done

    async def tick(self, *, now: float) -> None:
        for acct in (self.r_acct, self.c_acct):
            acct.after_batch(now=now)
            acct.handle_timer(now=now)
        await self.pump(now=now)

    async def start(self) -> None:
        self.c_acct.handshake_completed(R, now=0.0)  # C's hello to R
        await self.pump(now=0.0)


async def test_the_relay_bills_both_directions_to_the_client_and_keeps_its_receipts(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path, AccountingConfig(credit_window=4 * MiB))
    await rig.start()
    assert rig.r_acct.roles[C] is Role.CLIENT and E not in rig.r_acct.roles
    now = 0.0
    for step in range(200):  # 20 s: 100 datagrams up and 300 down every 0.1 s
        now = 0.1 * step
        assert rig.up(100, now=now) == 100 and rig.down(300, now=now) == 300
        await rig.tick(now=now)
    for later in (20.5, 21.5, 22.5):  # the last invoices by time, and their receipts
        await rig.tick(now=later)
    assert rig.relayed == 200 * 400 * DATAGRAM
    [pair] = rig.relay.status()
    assert pair["payer"] == encode_key(C) and pair["bytes"] == rig.relayed
    assert pair["drops"] == {} and rig.r_acct.drops == {}
    # every relayed byte is receipted, and what C signed is exactly what it counted
    used = rig.c_acct.used[R]
    assert (used.own_up, used.own_down) == (200 * 100 * DATAGRAM, 200 * 300 * DATAGRAM)
    await rig.r_acct.flush()
    [row] = [r for r in rig.ledger.usage() if "session_id" in r]
    assert row["peer_key"] == C and row["receipts"] > 16  # the window grew on the way
    assert (row["verified_up"], row["verified_down"]) == (used.own_up, used.own_down)
    # `tidewire usage` on R: C is the client; on C: R is a provider it pays
    [session] = usage(rig.r_acct, rig.ledger.usage())["sessions"]
    assert session["client"] == encode_key(C) and session["unverified"] == 0
    [paid] = usage(rig.c_acct, [])["providers_used"]
    assert paid["provider"] == encode_key(R) and paid["refused"] is None
    assert paid["signed_up"] + paid["signed_down"] == rig.relayed


async def test_a_client_that_stops_paying_is_held_cut_off_and_resumes_when_it_pays(
    tmp_path: Path,
) -> None:
    cfg = AccountingConfig(credit_window=1 * MiB, cutoff=3.0)
    rig = Rig(tmp_path, cfg)
    await rig.start()
    for step in range(10):  # paying: 1 s of traffic, all of it through
        assert rig.up(50, now=0.1 * step) == 50
        await rig.tick(now=0.1 * step)
    rig.receipts_lost = True  # from here C's receipts never reach R
    through, offered, now = 0, 0, 1.0
    while now < 6.0:
        through += rig.up(50, now=now)
        offered += 50
        await rig.tick(now=now)
        now = round(now + 0.1, 1)
    # R let through at most the credit window beyond the last receipt, then dropped
    assert through * DATAGRAM <= cfg.credit_window + cfg.invoice_bytes + DATAGRAM, through
    [pair] = rig.relay.status()
    unpaid = pair["drops"]["unpaid"]
    assert unpaid == offered - through and rig.relay.drops["relay_unpaid"] == unpaid
    assert rig.r_acct.drops["credit_exhausted"] == unpaid
    assert rig.cut == [C]  # cut off once, `cutoff` s after it went over the window
    assert rig.up(1, now=now) == 0
    rig.receipts_lost = False  # C pays again: its next receipt covers what it owes
    for later in (6.0, 7.0, 8.0):
        await rig.tick(now=later)
    assert rig.up(50, now=8.1) == 50
    assert rig.r_acct.credits[C].owed <= cfg.credit_window


async def test_a_free_relay_charges_nobody_and_the_other_end_never_pays(tmp_path: Path) -> None:
    """Without `provider = true` C sends no hello, so R holds it to the window and then
    drops (nothing is ever receipted); E, which only answers, is never billed."""
    cfg = AccountingConfig(credit_window=1 * MiB)
    rig = Rig(tmp_path, cfg, pay=False)
    await rig.start()
    assert rig.wire == [] and rig.c_acct.used == {}
    through = sum(rig.up(100, now=0.1 * s) for s in range(20))
    assert rig.down(10, now=2.0) == 0  # towards C is C's bill too
    assert through * DATAGRAM <= cfg.credit_window + DATAGRAM
    assert E not in rig.r_acct.roles and rig.r_acct.credits[C].current is None
    # a relay without require_receipts has no payer and no charge
    free = Relay(
        public_key=R,
        local_overlay=overlay.overlay_address(R),
        config=RelayConfig(enabled=True, pair_rate=None),
        next_hop=lambda k: k if k in (C, E) else None,
        trusted=lambda k: False,
        overlay_of=overlay.overlay_address,
        charge=lambda payer, n, up: False,
    )
    assert isinstance(free.receive(C, frame(C, E, b"x"), now=0.0), Forward)
    assert free.status()[0]["payer"] is None


async def test_a_relay_that_over_bills_is_refused_and_no_longer_used(tmp_path: Path) -> None:
    """R's invoices bill 10% more than it relayed: C refuses the first one over its
    tolerance, disconnects R (the provider's path) and sends nothing more through it."""
    cfg = AccountingConfig(credit_window=4 * MiB, slack=64 * 1024)
    rig = Rig(tmp_path, cfg)
    honest = rig.r_acct.make_invoice

    def inflated(s: Any, *, now: float, wall_ms: int) -> channel.Invoice:
        inv = honest(s, now=now, wall_ms=wall_ms)
        inv = dataclasses.replace(inv, bytes_up=int(inv.bytes_up * 1.1))
        s.pending[inv.seq] = inv
        return inv

    rig.r_acct.make_invoice = inflated  # type: ignore[method-assign]
    await rig.start()
    for step in range(30):
        rig.up(100, now=0.1 * step)
        await rig.tick(now=0.1 * step)
    used = rig.c_acct.used[R]
    assert used.refused and "bills" in used.refusal_reason
    before = rig.c_acct.drops["provider_refused"]
    assert rig.cut == [R] and rig.up(10, now=3.5) == 0
    assert rig.c_acct.drops["provider_refused"] == before + 10


async def test_the_exit_opening_the_pair_after_a_restart_does_not_pay_for_it(
    tmp_path: Path,
) -> None:
    """The exit's frames reach R before C has said hello (R just restarted): they open
    the pair and are held to E's window as its own; C's hello makes C the payer, and
    then everything flows and is billed to C."""
    cfg = AccountingConfig(credit_window=4 * MiB)
    rig = Rig(tmp_path, cfg)
    assert rig.down(10, now=0.0) == 10  # E first: E opened the pair
    assert rig.relay.status()[0]["payer"] == encode_key(E)
    await rig.start()  # C's hello
    for step in range(1, 40):
        now = 0.1 * step
        assert rig.down(100, now=now) == 100 and rig.up(30, now=now) == 30
        await rig.tick(now=now)
    assert rig.relay.status()[0]["payer"] == encode_key(C)
    assert rig.r_acct.credits[E].owed == 10 * DATAGRAM  # what it was charged before C paid
    assert rig.r_acct.drops == {} and rig.c_acct.used[R].refused is False
