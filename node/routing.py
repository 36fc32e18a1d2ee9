"""The overlay route exchange in the node: the Babel engine on the control channel.

node/core/routing/babel.py decides; this component connects it. It registers the
route messages on the control plane (which has already checked that a datagram came
from the peer's own overlay address inside its authenticated link), makes the peers
flagged `neighbour = true` in the configuration its neighbours, sends what the engine
says on the control channel, and is one component of the node's timer task. Route
installs are shown in `tidewire status`, and `next_hop` gives relays the next hop of
the selected route to a destination key (node/relay.py). Randomness (the engine's
first seqnos) is the system's.
"""

import os
from collections import Counter
from collections.abc import Callable

from tidewire.node.core.control_plane import ControlPlane
from tidewire.node.core.routing.announce import Send
from tidewire.node.core.routing.babel import Babel, Params
from tidewire.node.core.routing.metric import INFINITY
from tidewire.protocol.control import routes as wire
from tidewire.protocol.keys import encode_key


class Routing:
    def __init__(
        self,
        *,
        public_key: bytes,
        control: ControlPlane,
        now: float,
        params: Params | None = None,
        rng: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.control = control
        self.engine = Babel(router_id=public_key, rng=rng, now=now, params=params or Params())
        for kind in wire.KIND_OF:
            control.register(kind, self._receive)

    def add_neighbour(self, key: bytes, *, now: float) -> None:
        self.engine.add_neighbour(key, now=now)
        self._act()

    def remove_neighbour(self, key: bytes, *, now: float) -> None:
        self.engine.remove_neighbour(key, now=now)
        self._act()

    def _receive(self, peer_key: bytes, msg: wire.RouteMessage, *, now: float) -> None:
        self.engine.receive(peer_key, msg, now=now)
        self._act()

    def get_timer(self) -> float | None:
        return self.engine.get_timer()

    def handle_timer(self, *, now: float) -> None:
        if now >= self.engine.get_timer():
            self.engine.handle_timer(now=now)
            self._act()

    def _act(self) -> None:
        for action in self.engine.take_actions():
            if isinstance(action, Send):
                self.control.send(action.neighbour, action.message)

    def next_hop(self, destination: bytes) -> bytes | None:
        """The neighbour the selected route to a node's key goes through (relays forward
        on it: node/relay.py), or None."""
        dest = self.engine.destinations.get(destination)
        sel = dest.selected if dest is not None else None
        return sel.neighbour if sel is not None and sel.metric < INFINITY else None

    def counters(self) -> Counter[str]:
        e = self.engine
        return e.counters + e.sources.counters + e.requests.counters

    def status(self) -> list[dict[str, object]]:
        """Every destination with its selected route and feasibility distance."""
        out: list[dict[str, object]] = []
        for prefix, dest in sorted(self.engine.destinations.items()):
            sel = dest.selected
            fd = self.engine.sources.get(prefix, sel.router_id if sel else prefix)
            out.append(
                {
                    "destination": encode_key(prefix),
                    "next_hop": encode_key(sel.neighbour) if sel else None,
                    "metric": sel.metric if sel else INFINITY,
                    "seqno": sel.seqno if sel else None,
                    "router_id": encode_key(sel.router_id) if sel else None,
                    "feasibility_distance": [fd.seqno, fd.metric] if fd else None,
                    "routes": len(dest.routes),
                }
            )
        return out
