"""One overlay neighbour: the hellos we hear from it, its IHUs, the link's cost.

Only peers the node was told are tidewire neighbours (configured, or discovered)
get one; route messages from anyone else are dropped and counted (babel.py). A
neighbour's hello that does not come within 1.5 of its announced interval counts as
missed (RFC 8966 appendix A.1); its IHU (our rxcost as it sees it, so our txcost)
holds for 3.5 of its interval (appendix B), after which the link cost is infinite.
Each IHU we send echoes the timestamp of the last hello we heard, with when we heard
it, so the neighbour measures the RTT (metric.py, RFC 9616).
"""

from tidewire.protocol.control import routes as wire

from .metric import INFINITY, HelloHistory, Rtt, RttParams, link_cost, timestamp

IHU_HOLD = 3.5
HELLO_GRACE = 1.5
MAX_MISSED = 16
ECHO_FRESH = 60.0  # seconds after which a heard hello's timestamp is too old to echo


class Neighbour:
    def __init__(self, key: bytes, *, rtt: RttParams, hello_seqno: int) -> None:
        self.key = key
        self.history = HelloHistory()
        self.rtt = Rtt(rtt)
        self.interval = 0.0  # the neighbour's hello interval, seconds
        self.hello_deadline: float | None = None
        self.txcost = INFINITY
        self.ihu_expires = float("-inf")
        self.heard_ts = 0  # t1 of its last hello
        self.heard_at = float("-inf")  # when we heard it
        self.hello_seqno = hello_seqno  # ours, towards it
        self.cost = INFINITY  # as of the last `refresh`

    def on_hello(self, *, seqno: int, interval_cs: int, ts: int, now: float) -> None:
        self.history.heard(seqno)
        self.interval = max(interval_cs, 1) / 100
        self.hello_deadline = now + HELLO_GRACE * self.interval
        self.heard_ts, self.heard_at = ts, now

    def on_ihu(self, msg: wire.Ihu, *, now: float) -> bool:
        """Record the IHU; False if its timestamps were absurd."""
        self.txcost = msg.rxcost
        self.ihu_expires = now + IHU_HOLD * max(msg.interval, 1) / 100
        if msg.origin == 0 or msg.transmit == 0:
            return True
        return self.rtt.sample(t1=msg.origin, t2=msg.receive, t3=msg.transmit, now=now)

    def check_missed(self, *, now: float) -> None:
        missed = 0
        while self.hello_deadline is not None and now >= self.hello_deadline:
            self.history.missed()
            self.hello_deadline += self.interval
            missed += 1
            if missed >= MAX_MISSED:
                self.hello_deadline = None

    def echo(self, *, now: float) -> tuple[int, int, int]:
        """(origin, receive, transmit) for the IHU we send now."""
        if self.heard_ts == 0 or now - self.heard_at > ECHO_FRESH:
            return 0, 0, 0
        return self.heard_ts, timestamp(self.heard_at), timestamp(now)

    def refresh(self, *, now: float) -> bool:
        """Recompute the link cost; True if it changed."""
        txcost = self.txcost if now < self.ihu_expires else INFINITY
        cost = link_cost(
            txcost=txcost, rxcost=self.history.rxcost(), rtt_cost=self.rtt.cost(now=now)
        )
        changed = cost != self.cost
        self.cost = cost
        return changed
