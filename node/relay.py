"""The relay component: relay frames between the data path and node/core/relay.py.

The data path hands every decrypted packet to our overlay address on the relay port
here (before the control channel and the TUN, after the link authenticated it). The
core says what it is: a datagram for us, given back to the data path's `receive` on
its relayed path (the link opens it like any other, so the end-to-end session learns
the path from authenticated packets only), or a frame to forward, sealed inside the
link to the next hop and queued on that hop's transport (it leaves with the batch).
Every refusal is a counted drop in `drops` (relay_<reason>). A frame the pair's rate
cannot pay for yet waits in the core's pacing queue: this component is a timer
component, and what the core releases leaves the same way (the timer task flushes the
transports after it).

The next hop for a destination is a direct peer with that key that has a path, else
the next hop of the overlay route to it (node/routing.py), if the node has one.

Paying relays go through the accountant (node/accounting.py), the provider's code: a
relay with `require_receipts` charges each paid pair's frames to its payer's credit
(`relayed_for`) as they leave; an end counts the frames on its link with a relay it
pays (`relayed_via`: delivered here, sent in node/transports/relay.py), which is what
it checks that relay's invoices against.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING

from tidewire.node.core import relay as core
from tidewire.node.metrics import Registry
from tidewire.node.transports.relay import RelayTransport
from tidewire.protocol.keys import encode_key
from tidewire.protocol.types import RELAY, Path

if TYPE_CHECKING:
    from tidewire.node.datapath import DataPath


class RelayNode:
    def __init__(
        self,
        datapath: "DataPath",
        transport: RelayTransport,
        *,
        config: core.RelayConfig,
        route: Callable[[bytes], bytes | None],
        trusted: Callable[[bytes], bool],
    ) -> None:
        self.datapath = datapath
        self.route = route  # destination key -> the overlay route's next hop
        dev = datapath.device
        self.core = core.Relay(
            public_key=dev.public_key,
            local_overlay=datapath.control.local_overlay,
            config=config,
            next_hop=self.next_hop,
            trusted=trusted,
            overlay_of=datapath.control.overlay_of,
            charge=self._charge if config.require_receipts else None,
            paying=self._paying,
        )
        transport.attach(datapath, self.core)
        datapath.relay = self
        datapath.timers.add(self)

    def next_hop(self, destination: bytes) -> bytes | None:
        peer = self.datapath.device.peers.get(destination)
        if peer is not None and peer.path is not None and peer.path.transport != RELAY:
            return destination
        return self.route(destination)

    def _paying(self, key: bytes) -> bool:
        acct = self.datapath.accountant
        return acct is not None and acct.pays_relaying(key)

    def _charge(self, payer: bytes, n: int, up: bool) -> bool:
        acct = self.datapath.accountant
        return acct is None or acct.relayed_for(payer, n, up)

    def receive(self, neighbour: bytes, packet: bytes, *, now: float) -> None:
        verdict = self.core.receive(neighbour, packet, now=now)
        if isinstance(verdict, core.Deliver):
            acct = self.datapath.accountant
            if acct is not None and not acct.relayed_via(
                neighbour, len(verdict.datagram), up=False
            ):
                self.core.drops["relay_provider_refused"] += 1
                return
            self.datapath.receive(verdict.datagram, Path(RELAY, verdict.address), now=now)
        elif isinstance(verdict, core.Forward):
            self._forward(verdict, now=now)
        elif self.core.waiting:
            self.datapath.timers.rearm()  # queued for the pair's rate

    def _forward(self, verdict: core.Forward, *, now: float) -> None:
        dp = self.datapath
        peer = dp.device.peers.get(verdict.next_hop)
        if peer is None:
            self.core.drops["relay_no_route"] += 1
            return
        out = dp.device.encrypt(peer, verdict.packet, now=now)
        path = peer.path
        if out is None or path is None:
            return
        transport = dp.transports.get(path.transport)
        if transport is None:
            dp.drops["send_no_transport"] += 1
        else:
            transport.add(out, path.address)

    def reconfigure(self, config: core.RelayConfig, *, now: float) -> None:
        """A reload's limits (core.Relay.reconfigure); frames the new rate lets go leave."""
        self.core.reconfigure(config, now=now)
        for verdict in self.core.take_released():
            self._forward(verdict, now=now)
        self.datapath.flush()
        self.datapath.timers.rearm()

    def get_timer(self) -> float | None:
        return self.core.get_timer()

    def handle_timer(self, *, now: float) -> None:
        """Frames whose pair's tokens came: sealed and queued like any forward."""
        if not self.core.waiting:
            return
        self.core.handle_timer(now=now)
        for verdict in self.core.take_released():
            self._forward(verdict, now=now)

    def register(self, reg: Registry) -> None:
        """Frames and bytes forwarded and delivered, and per pair of ends (at most
        max_pairs labels, "A,B" in base64)."""
        relay = self.core
        reg.counters(
            "tidewire_relay_events_total",
            "Relay frames delivered to us, forwarded and wrapped, and their bytes.",
            label="event",
            source=relay.counters,
        )

        def per_pair(read: Callable[[core.Pair], float]) -> Callable[[], list[tuple[str, float]]]:
            return lambda: [
                (f"{encode_key(a)},{encode_key(b)}", read(p)) for (a, b), p in relay.pairs.items()
            ]

        for name, text, read in (
            ("bytes", "Bytes of end-to-end datagrams forwarded", lambda p: p.bytes),
            ("drops", "Frames refused for the rate or byte cap", lambda p: sum(p.drops.values())),
        ):
            reg.labelled(
                f"tidewire_relay_pair_{name}_total",
                f"{text}, per pair of ends.",
                label="pair",
                read=per_pair(read),
            )

    def status(self) -> dict[str, object]:
        c = self.core
        return {
            "enabled": c.config.enabled,
            "pair_rate": c.config.pair_rate,
            "pair_cap": c.config.pair_cap,
            "max_pairs": c.config.max_pairs,
            "require_receipts": c.config.require_receipts,
            "price": c.config.price,
            "queued": c.held,
            "counters": dict(c.counters),
            "drops": dict(c.drops),
            "pairs": c.status(),
        }
