"""Every native peer's path set, and the probes between them (docs/protocol/path-probes.md).

The data path owns one `Paths`. For each native peer it holds a `PathSet` (pathset.py)
and gives the link the set's `authenticated` as the peer's path hook, so the link calls
it for every authenticated packet instead of roaming by itself; WireGuard-mode peers get
no path set and roam as WireGuard does. Probes and their replies are control messages
(protocol/control/channel.py): a probe goes on one chosen path inside the session, and
its reply goes back on the path the probe came on, which is the path the hook saw last.

Outputs, drained by the data path after each batch and each timer (`flush`): control
messages to seal and send on a given path, initiations to send again on another path
(the race), and events (switched, confirmed, learned) to log and remember. One timer
component for all path sets (`get_timer` / `handle_timer`).
"""

from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from tidewire.protocol.control.channel import Message, PathProbe, PathProbeReply
from tidewire.protocol.errors import RemoteProtocolError
from tidewire.protocol.link.peer import Peer
from tidewire.protocol.types import Path, RandomSource

from .candidate import Candidate
from .pathset import Event, PathSet, _us

MAX_EVENTS = 256


class Paths:
    def __init__(self, *, rng: RandomSource) -> None:
        self.rng = rng
        self.sets: dict[bytes, PathSet] = {}
        self.choosers: list[PathSet] = []
        self.unsettled: list[PathSet] = []  # followers that saw a packet on another path
        self.replies: list[tuple[bytes, Message, Path]] = []
        self.events: deque[Event] = deque(maxlen=MAX_EVENTS)
        self.counters: Counter[str] = Counter()  # per transport: probes, replies, switches
        self.drops: Counter[str] = Counter()

    def _new_id(self) -> int:
        return int.from_bytes(self.rng(4), "little")

    def add(self, peer: Peer, paths: list[Path], *, start: Path | None = None) -> PathSet:
        """Give a native peer its candidates (in order of preference; none: it follows),
        the race starting on `start` if given (the path that won on this network)."""
        self.remove(peer.public_key)
        ps = PathSet(
            peer,
            paths,
            start=start,
            new_id=self._new_id,
            unsettled=self.unsettled,
            events=self.events,
        )
        self.sets[peer.public_key] = ps
        if ps.chooser:
            self.choosers.append(ps)
        peer.path_hook = ps.authenticated
        return ps

    def remove(self, public_key: bytes) -> None:
        ps = self.sets.pop(public_key, None)
        if ps is not None:
            ps.peer.path_hook = None
            if ps in self.choosers:
                self.choosers.remove(ps)

    # -- after each authenticated datagram ------------------------------------------

    def settle(self, *, now: float) -> None:
        """The followers move to where their latest packet came from (unless it was a
        probe of a spare path: `on_probe` cleared that)."""
        for ps in self.unsettled:
            ps.settle(now=now)
        self.unsettled.clear()

    # -- control messages (registered on the control plane) --------------------------

    def on_probe(self, peer_key: bytes, msg: PathProbe, *, now: float) -> None:
        ps = self.sets.get(peer_key)
        if ps is None or ps.last_path is None:
            raise RemoteProtocolError("probe_unexpected")
        path = ps.last_path
        self.replies.append((peer_key, PathProbeReply(msg.probe_id, msg.timestamp_us), path))
        self.counters[f"probes_answered_{path.transport}"] += 1
        ps.probed(active=bool(msg.active), now=now)

    def on_reply(self, peer_key: bytes, msg: PathProbeReply, *, now: float) -> None:
        ps = self.sets.get(peer_key)
        if ps is None or not ps.answered(msg.probe_id, msg.echo_us, now=now):
            raise RemoteProtocolError("probe_reply_unknown")
        if ps.last_path is not None:
            self.counters[f"probe_replies_{ps.last_path.transport}"] += 1

    # -- the link's events --------------------------------------------------------------

    def initiation_sent(self, peer_key: bytes, *, now: float) -> None:
        ps = self.sets.get(peer_key)
        if ps is not None:
            ps.initiation_sent(now=now)

    # -- timers -------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        best: float | None = None
        for ps in self.choosers:
            t = ps.get_timer()
            if t is not None and (best is None or t < best):
                best = t
        return best

    def handle_timer(self, *, now: float) -> None:
        for ps in self.choosers:
            ps.handle_timer(now=now)

    # -- outputs ------------------------------------------------------------------------

    def flush(
        self,
        *,
        send: Callable[[bytes, Message, Path], None],
        initiate: Callable[[bytes, Path], None],
    ) -> None:
        """Send what the path sets want sent: `send(peer key, message, path)` seals a
        control message and sends it on that path; `initiate(peer key, path)` sends the
        peer's current initiation again on another path."""
        replies, self.replies = self.replies, []
        for key, msg, path in replies:
            send(key, msg, path)
        for ps in self.choosers:
            key = ps.peer.public_key
            if ps.probes:
                for probe in ps.take_probes():
                    self.counters[f"probes_sent_{probe.path.transport}"] += 1
                    msg = PathProbe(probe.probe_id, _us(probe.sent), int(probe.active))
                    send(key, msg, probe.path)
                ps.probes_sent()
            if ps.initiations:
                paths, ps.initiations = ps.initiations, []
                for path in paths:
                    self.counters[f"race_initiations_{path.transport}"] += 1
                    initiate(key, path)

    def next_event(self) -> Event | None:
        if not self.events:
            return None
        event = self.events.popleft()
        if event[1] == "switched" and event[2] is not None:
            self.counters[f"switches_to_{event[2].transport}"] += 1
        return event


def describe(ps: PathSet, *, now: float) -> dict[str, Any]:
    """A peer's paths for `tidewire status`: the active one, every candidate with its
    state, RTT (ms), loss (0-1) and seconds since its last reply, and the switches."""
    active = ps.active.path if ps.active is not None else ps.peer.path

    def one(c: Candidate) -> dict[str, Any]:
        srtt = c.rtt.srtt
        return {
            "transport": c.path.transport,
            "endpoint": _address(c.path),
            "state": c.state.value,
            "rtt_ms": None if srtt is None else round(srtt * 1000, 1),
            "loss": c.losses.loss,
            "last_reply": None if c.last_reply is None else round(now - c.last_reply, 1),
            "learned": c.learned,
            "active": c.path == active,
        }

    return {
        "role": "chooser" if ps.chooser else "follower",
        "active": None
        if active is None
        else {"transport": active.transport, "endpoint": _address(active)},
        "candidates": [one(c) for c in sorted(ps.candidates, key=lambda c: c.preference)],
        "switches": ps.switches,
    }


def _address(path: Path) -> str:
    host, port = path.address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
