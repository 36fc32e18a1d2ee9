"""An iterative lookup (BEP 5): ask the nodes nearest a target for nodes nearer still.

At most ALPHA queries are in flight; each answer adds the nodes it names; the lookup
ends when the K nearest nodes it knows of have all answered or failed and none is
left to ask. What the answers carried along the way (peers, items, write tokens) is
kept for the caller: an announce or put goes to the nearest nodes that gave a token.
The number of candidates is bounded, so a node answering with thousands of made-up
nodes cannot grow a lookup without limit.
"""

from dataclasses import dataclass, field
from enum import Enum

from .ids import distance

Address = tuple[str, int]

ALPHA = 3
K = 8
MAX_CANDIDATES = 200


class State(Enum):
    NEW = "new"
    ASKED = "asked"
    ANSWERED = "answered"
    FAILED = "failed"


@dataclass(slots=True)
class Candidate:
    id: bytes
    addr: Address
    state: State = State.NEW
    token: bytes | None = None


@dataclass
class Lookup:
    target: bytes
    method: str  # find_node, get_peers or get
    candidates: dict[bytes, Candidate] = field(default_factory=dict)
    peers: set[Address] = field(default_factory=set)
    values: list[tuple[bytes, bytes]] = field(default_factory=list)  # (responder id, raw)
    seen_addrs: set[Address] = field(default_factory=set)

    def add(self, nodes: list[tuple[bytes, Address]]) -> None:
        for node_id, addr in nodes:
            if node_id in self.candidates or addr in self.seen_addrs:
                continue
            self.candidates[node_id] = Candidate(node_id, addr)
            self.seen_addrs.add(addr)
        if len(self.candidates) > MAX_CANDIDATES:
            keep = sorted(self.candidates.values(), key=self._far)
            for c in keep[MAX_CANDIDATES:]:
                if c.state is State.NEW:
                    del self.candidates[c.id]

    def _far(self, c: Candidate) -> int:
        return distance(c.id, self.target)

    def _nearest(self) -> list[Candidate]:
        live = [c for c in self.candidates.values() if c.state is not State.FAILED]
        return sorted(live, key=self._far)[:K]

    def next_queries(self) -> list[Candidate]:
        """Candidates to ask now: the nearest not yet asked, keeping ALPHA in flight."""
        in_flight = sum(c.state is State.ASKED for c in self.candidates.values())
        out: list[Candidate] = []
        for c in self._nearest():
            if in_flight + len(out) >= ALPHA:
                break
            if c.state is State.NEW:
                out.append(c)
        for c in out:
            c.state = State.ASKED
        return out

    def answered(self, node_id: bytes, *, token: bytes | None = None) -> None:
        c = self.candidates.get(node_id)
        if c is not None and c.state is State.ASKED:
            c.state = State.ANSWERED
            c.token = token

    def failed(self, node_id: bytes) -> None:
        c = self.candidates.get(node_id)
        if c is not None and c.state is State.ASKED:
            c.state = State.FAILED

    @property
    def done(self) -> bool:
        return not any(c.state in (State.NEW, State.ASKED) for c in self._nearest())

    def nearest_answered(self) -> list[Candidate]:
        answered = [c for c in self.candidates.values() if c.state is State.ANSWERED]
        return sorted(answered, key=self._far)[:K]

    def with_tokens(self) -> list[Candidate]:
        """The nearest K that answered with a write token (where announces and puts go)."""
        answered = [c for c in self.candidates.values() if c.token is not None]
        return sorted(answered, key=self._far)[:K]
