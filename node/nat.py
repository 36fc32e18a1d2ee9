"""NAT traversal in the node: node/core/nat on the control channel, the link and the
path sets (docs/routing.md, "NAT traversal").

The core decides; this component connects it. It registers NAT_LOOKUP, NAT_INTRODUCE
and NAT_OBSERVED on the control plane (which has already checked that each came from
the peer's own overlay address inside its authenticated link), tells the core of every
native session that comes up, and answers its two questions from the link itself:
where a peer's latest authenticated packet came from (`observed`, UDP paths only: what
a mediator passes on), and when a peer was last heard on a direct path (`heard`, from
its path set; a relayed path does not count). A punch adds the endpoint as a candidate
of the peer's path set (pathset.add_candidate): inside a session the path set probes it
and moves to it once it answers; without one the punch is a handshake initiation on it
(a fresh one, or the latest again while the link's 5 s rate limit holds). Once a peer
reports an observed endpoint that is none of ours, the peers whose keepalive the file
does not set get `[nat] keepalive`.

A native peer the file gives no endpoint is a target. One it gives only relay://
endpoints becomes a target once we find we are behind a NAT (the relayed path carries
the traffic meanwhile, and stays if no punch ever answers, as behind a symmetric NAT);
not before, since a punch tells the far end our address, which a relayed path
otherwise hides from it (docs/protocol/relay.md). A punch never moves a peer off a
relayed path it is on: it races the latest initiation on the punched path, or probes
it inside the relayed session.
"""

import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

from tidewire.node.config import NatSpec, PeerSpec
from tidewire.node.core.nat import Nat, Punch, Send
from tidewire.protocol.control.nat import NatIntroduce, NatLookup, NatObserved
from tidewire.protocol.keys import encode_key, short
from tidewire.protocol.link.constants import REKEY_TIMEOUT
from tidewire.protocol.link.profile import Mode
from tidewire.protocol.types import UDP, Endpoint, Path

if TYPE_CHECKING:
    from tidewire.node.datapath import DataPath

log = logging.getLogger("tidewire.node")

RELAY = "relay"  # the transport name of a relayed path: never a direct one


class NatTraversal:
    def __init__(
        self, *, datapath: "DataPath", spec: NatSpec, local: set[Endpoint], now: float
    ) -> None:
        self.dp = datapath
        self.spec = spec
        self.core = Nat(
            observed=self._observed,
            heard=self._heard,
            local=local,
            mediate=spec.mediate,
            punch=spec.punch,
        )
        self.automatic: set[bytes] = set()  # peers whose keepalive is ours to set
        self.relayed: set[bytes] = set()  # relay-only peers: targets once behind a NAT
        self.keepalive_on = False
        control = datapath.control
        control.register(NatLookup, self._handle(self.core.on_lookup))
        control.register(NatIntroduce, self._handle(self.core.on_introduce))
        control.register(NatObserved, self._handle(self.core.on_observed))
        control.on_established.append(self._established)
        control.on_forget.append(self._forget)

    def _handle(self, verb: Any) -> Any:
        def handler(key: bytes, msg: Any, *, now: float) -> None:
            verb(key, msg, now=now)
            self._act(now=now)

        return handler

    # -- peers -------------------------------------------------------------------------

    def add_peer(self, spec: PeerSpec, *, now: float) -> None:
        """A peer added, or changed in place (a reload: its keepalive was just set from
        the file, so the automatic one goes back on if the file still sets none)."""
        if spec.keepalive_set:
            self.automatic.discard(spec.public_key)
        else:
            self.automatic.add(spec.public_key)
            if self.keepalive_on:
                self._keepalive(spec.public_key, now=now)
        native = spec.mode is Mode.NATIVE and self.spec.punch
        self.relayed.discard(spec.public_key)
        if native and spec.endpoint is not None and not _direct(spec):
            self.relayed.add(spec.public_key)
        if (native and spec.endpoint is None) or spec.public_key in self.relayed:
            if spec.endpoint is None or self.core.behind_nat:
                self.core.add_target(spec.public_key, now=now)
            # the mediators, and the relays: the far end reaches us through a relay only
            # while our link with it is up (and, behind a NAT, kept up by the keepalive)
            self._reach_mediators(now=now)
            self.dp.timers.rearm()
            return
        self.core.puncher.targets.pop(spec.public_key, None)  # an endpoint now: not sought
        if self.core.puncher.targets and spec.endpoint is not None:
            self._reach_mediators(now=now)

    def _reach_mediators(self, *, now: float) -> None:
        """A target is found through our other peers: open a session with each native
        peer we have an endpoint for (once; the link rate-limits initiations anyway)."""
        dev = self.dp.device
        for peer in dev.peers.values():
            native = peer.profile.mode is Mode.NATIVE
            if native and peer.path is not None and peer.current is None:
                dev.initiate(peer, now=now)

    def _established(self, key: bytes, *, now: float) -> None:
        self.core.established(key, now=now)
        self._act(now=now)

    def _forget(self, key: bytes) -> None:
        self.core.forget(key)
        self.automatic.discard(key)
        self.relayed.discard(key)

    # -- what the core asks ------------------------------------------------------------

    def _observed(self, key: bytes) -> Endpoint | None:
        peer = self.dp.device.peers.get(key)
        if peer is None or peer.current is None or peer.path is None:
            return None
        return peer.path.address if peer.path.transport == UDP else None

    def _heard(self, key: bytes) -> float | None:
        ps = self.dp.paths.sets.get(key)
        if ps is None:
            return None
        times = [
            c.last_reply
            for c in ps.candidates
            if c.last_reply is not None and c.path.transport != RELAY
        ]
        return max(times, default=None)

    # -- timers and actions --------------------------------------------------------------

    def get_timer(self) -> float | None:
        return self.core.get_timer()

    def handle_timer(self, *, now: float) -> None:
        t = self.core.get_timer()
        if t is not None and now >= t:
            self.core.handle_timer(now=now)
            self._act(now=now)

    def _act(self, *, now: float) -> None:
        for action in self.core.take_actions():
            if isinstance(action, Send):
                self.dp.control.send(action.key, action.message)
            elif isinstance(action, Punch):
                self._punch(action.key, action.path, now=now)
        if self.core.behind_nat:
            for key in self.relayed - self.core.puncher.targets.keys():
                self.core.add_target(key, now=now)  # its first lookup goes at the next timer
        if self.core.behind_nat and not self.keepalive_on and self.spec.keepalive:
            self.keepalive_on = True
            log.info(
                "behind a NAT: persistent keepalive %d s for peers without one", self.spec.keepalive
            )
            for key in self.automatic:
                self._keepalive(key, now=now)
        self.dp.timers.rearm()

    def _punch(self, key: bytes, path: Path, *, now: float) -> None:
        dev = self.dp.device
        peer = dev.peers.get(key)
        ps = self.dp.paths.sets.get(key)
        if peer is None:
            return
        if ps is not None:
            ps.add_candidate(path, now=now)
            if ps.chooser and peer.usable_keypair(now=now) is not None:
                return  # the path set probes it inside the session
        if peer.path is not None and peer.path.transport == RELAY:
            # the relay carries the traffic until the punched path answers: race our
            # initiation there, or start one over the relay (the next punch probes)
            if not dev.resend_initiation(peer, path):
                dev.initiate(peer, now=now)
            return
        peer.path = path  # no session, or a stale one: the answer moves it anyway
        last = peer.handshake.last_sent_initiation
        if last is None or now - last >= REKEY_TIMEOUT or not dev.resend_initiation(peer, path):
            dev.initiate(peer, now=now)  # rate-limited by the link to one per 5 s
        log.debug("punch to %s at %s", short(key), path)

    def _keepalive(self, key: bytes, *, now: float) -> None:
        peer = self.dp.device.peers.get(key)
        if peer is None or peer.persistent_keepalive:
            return
        peer.persistent_keepalive = float(self.spec.keepalive)
        if peer.path is not None:
            self.dp.device.send_keepalive(peer, now=now)

    # -- status --------------------------------------------------------------------------

    def counters(self) -> Counter[str]:
        return self.core.counters()

    def status(self) -> dict[str, object]:
        return {
            "behind_nat": self.core.behind_nat,
            "automatic_keepalive": self.spec.keepalive if self.keepalive_on else 0,
            "counters": dict(sorted(self.core.counters().items())),
            "targets": [
                {**t, "peer": encode_key(t["peer"])}  # type: ignore[arg-type]
                for t in self.core.puncher.status()
            ],
        }


def _direct(spec: PeerSpec) -> bool:
    """Does the file give the peer a direct endpoint? One reached only through relays
    (relay:// endpoints) is punched to as if it had none: the relayed path carries the
    traffic until a punched one answers, and stays when none does (a symmetric NAT)."""
    listed = [spec.endpoint, *spec.fallbacks] if spec.endpoint is not None else []
    return any(not e.startswith(RELAY + "://") for e in listed)


def local_endpoints(addresses: list[str], port: int) -> set[Endpoint]:
    """Our own (address, port) pairs, from netconf.local_addresses and the listen port."""
    return {(a.split("/", 1)[0], port) for a in addresses}
