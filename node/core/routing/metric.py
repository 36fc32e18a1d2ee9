"""Link cost from measurement: hello history (loss, ETX) and round-trip time.

Loss (RFC 8966 appendix A.1 and A.2.2). Each neighbour sends hellos with a 16-bit
seqno every `interval`. The receiver keeps a 16-slot history: a hello with the
expected seqno shifts in a 1, a jump of n shifts in n-1 zeros then a 1, a hello
that does not come within 1.5 intervals shifts in a 0 (`missed`). A seqno far away
or behind means the neighbour restarted: the history starts again. beta, the
probability of hearing a hello, is the ones over the slots filled so far (a new
neighbour is not punished for the hellos it never had a chance to send); rxcost is
256/beta, and infinite once the last three slots are empty. The neighbour reports
our rxcost back in its IHU: that is our txcost, 256/alpha. The ETX cost is
256/(alpha*beta) (A.2.2), 256 for a lossless link.

Delay (RFC 9616). A hello carries its send time t1; the neighbour echoes t1 in its
IHU with t2 (when it heard the hello) and t3 (when it sent the IHU); at t4 the RTT
is (t4 - t1) - (t3 - t2), independent of the two clocks. Samples are smoothed by an
exponential average (babeld's rtt-decay of 42/256; the first sample counts double,
so a new link starts pessimistic); the cost added to the ETX is 0 below rtt_min,
max_penalty above rtt_max and linear between (RFC 9616 section 3.3). A sample above
rtt_max counts as rtt_max (the cost is the same) and one above RTT_ABSURD is refused:
a hello that waited in the link for a handshake (5 s and more when the first
initiation is lost) is echoed late, and one such sample, doubled as the first, kept a
5 ms link at the full penalty for two minutes in the lab.

Route metrics are smoothed too (babeld's smoothing half-life): `smooth` moves a
smoothed value toward the metric with a half-life, so selection can insist that a
new route is better both now and on the smoothed view (table.py).
"""

from dataclasses import dataclass

INFINITY = 0xFFFF
HISTORY = 16
_FULL = (1 << HISTORY) - 1
_RECENT = 0b111  # the last three slots: all empty means the link is down
RTT_DECAY = 42 / 256
RTT_VALID = 180.0  # seconds an RTT sample stays worth using (babeld)
RTT_ABSURD = 2.0  # s: a longer "round trip" is a hello that waited for a handshake
TS_MOD = 1 << 32


@dataclass(frozen=True, slots=True)
class RttParams:
    rtt_min: float = 0.010  # seconds
    rtt_max: float = 0.400
    max_penalty: int = 1024  # on top of 256 per lossless hop: latency matters in an overlay


def add_metric(a: int, b: int) -> int:
    return min(a + b, INFINITY)


def timestamp(now: float) -> int:
    """A 32-bit microsecond timestamp; 0 is "none" on the wire, so it is never 0."""
    return int(now * 1_000_000) % TS_MOD or 1


class HelloHistory:
    def __init__(self) -> None:
        self.reach = 0
        self.filled = 0
        self.expected: int | None = None

    def heard(self, seqno: int) -> None:
        if self.expected is None:
            jump = 0
        else:
            jump = (seqno - self.expected) & 0xFFFF
            if jump >= HISTORY:  # far ahead or behind: the neighbour restarted
                self.reach, self.filled, jump = 0, 0, 0
        for _ in range(jump):
            self._shift(0)
        self._shift(1)
        self.expected = (seqno + 1) & 0xFFFF

    def missed(self) -> None:
        self._shift(0)
        if self.expected is not None:
            self.expected = (self.expected + 1) & 0xFFFF

    def _shift(self, bit: int) -> None:
        self.reach = ((self.reach << 1) | bit) & _FULL
        self.filled = min(self.filled + 1, HISTORY)

    def rxcost(self) -> int:
        if self.filled == 0 or self.reach & _RECENT == 0:
            return INFINITY
        heard = bin(self.reach).count("1")
        return min(INFINITY, (256 * self.filled + heard // 2) // heard)


class Rtt:
    def __init__(self, params: RttParams) -> None:
        self.params = params
        self.smoothed: float | None = None
        self.time = float("-inf")

    def sample(self, *, t1: int, t2: int, t3: int, now: float) -> bool:
        """One RFC 9616 measurement; False if it is absurd (a stale or forged echo)."""
        local = (timestamp(now) - t1) % TS_MOD / 1e6
        remote = (t3 - t2) % TS_MOD / 1e6
        if remote > local or local - remote > RTT_ABSURD:
            return False
        rtt = min(local - remote, self.params.rtt_max)
        if self.smoothed is None or now - self.time > RTT_VALID:
            self.smoothed = 2 * rtt
        else:
            self.smoothed += RTT_DECAY * (rtt - self.smoothed)
        self.time = now
        return True

    def cost(self, *, now: float) -> int:
        p = self.params
        if self.smoothed is None or now - self.time > RTT_VALID or self.smoothed <= p.rtt_min:
            return 0
        if self.smoothed >= p.rtt_max:
            return p.max_penalty
        return int(p.max_penalty * (self.smoothed - p.rtt_min) / (p.rtt_max - p.rtt_min))


def link_cost(*, txcost: int, rxcost: int, rtt_cost: int) -> int:
    """ETX from both directions' costs (RFC 8966 A.2.2) plus the delay penalty."""
    if txcost >= INFINITY or rxcost >= INFINITY:
        return INFINITY
    etx = (max(txcost, 256) * max(rxcost, 256) + 128) >> 8
    return min(INFINITY, etx + rtt_cost)


SNAP = 4  # a smoothed metric this close to the metric is the metric (at the next step)


def smooth(smoothed: float, since: float, metric: int, *, now: float, half_life: float) -> float:
    """`smoothed` (as of `since`) moved toward `metric` over the time up to `now`."""
    if metric >= INFINITY or half_life <= 0 or now <= since:
        return float(metric) if metric >= INFINITY or half_life <= 0 else smoothed
    value = metric + (smoothed - metric) * 0.5 ** ((now - since) / half_life)
    return float(metric) if abs(value - metric) < SNAP else value
