"""What one path's probes tell: its round-trip time and its loss.

RTT follows RFC 6298 section 2 (the smoothed estimator TCP uses): the first sample R
sets SRTT = R and RTTVAR = R/2; each later one sets RTTVAR = (1 - beta) RTTVAR +
beta |SRTT - R| and then SRTT = (1 - alpha) SRTT + alpha R, with alpha 1/8 and beta
1/4. The probe timeout is RTO = SRTT + 4 RTTVAR (section 2.3), clamped between
PROBE_TIMEOUT_MIN and PROBE_TIMEOUT_MAX: a path check needs no TCP-sized minimum of
1 s, and a probe that has not come back in 2 s is lost for our purposes.

Loss is the share of lost probes among the last LOSS_WINDOW answered-or-lost ones.
"""

from collections import deque

ALPHA = 1 / 8  # RFC 6298 section 2.3
BETA = 1 / 4
K = 4
PROBE_TIMEOUT_MIN = 0.3  # seconds: no path of ours answers a probe faster than it can matter
PROBE_TIMEOUT_MAX = 2.0  # and none we would use needs longer
PROBE_TIMEOUT_FIRST = 1.0  # before any sample (RFC 6298 says 1 s too, section 2.1)
LOSS_WINDOW = 16  # probes


class RttEstimator:
    def __init__(self) -> None:
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.latest: float | None = None

    def sample(self, rtt: float) -> None:
        rtt = max(rtt, 0.0)
        self.latest = rtt
        if self.srtt is None:
            self.srtt, self.rttvar = rtt, rtt / 2
            return
        self.rttvar = (1 - BETA) * self.rttvar + BETA * abs(self.srtt - rtt)
        self.srtt = (1 - ALPHA) * self.srtt + ALPHA * rtt

    def probe_timeout(self) -> float:
        if self.srtt is None:
            return PROBE_TIMEOUT_FIRST
        rto = self.srtt + K * self.rttvar
        return min(max(rto, PROBE_TIMEOUT_MIN), PROBE_TIMEOUT_MAX)


class LossWindow:
    def __init__(self, size: int = LOSS_WINDOW) -> None:
        self.outcomes: deque[bool] = deque(maxlen=size)  # True: lost

    def record(self, *, lost: bool) -> None:
        self.outcomes.append(lost)

    @property
    def loss(self) -> float | None:
        """The share of lost probes in the window, or None before any outcome."""
        if not self.outcomes:
            return None
        return sum(self.outcomes) / len(self.outcomes)
