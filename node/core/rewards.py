"""Token rewards from verified bytes (issue 4), modelled on Deeper Network's schedule.

Default schedule: 10 billion tokens in total, 60% emitted to bandwidth providers,
emitted continuously from `genesis` with the rate halving every year, so the
provider emission sums to 6 billion (3 billion in the first year). An epoch's pool
is the emission over its window. Providers share the pool pro rata by verified
bytes, after a per-client cap: no one client key can make up more than
`max_client_share` of a provider's counted bytes.

Epochs are the network's, not each report's: a report counts only if its
`epoch_seconds` is the schedule's, so the emission of any time window is paid
once whatever lengths reports choose (a report of a one-second-longer epoch would
otherwise open a pool of its own). A provider has at most one report per epoch;
the caller drops exact copies, and a second, different one is an error, so the
result never depends on the order of the reports.

What this prevents: a provider inflating its own counts (only client-signed bytes
count) and one client key carrying a provider. What it does not: a provider
running many fake clients of its own, each signing receipts for traffic it sends
itself; that needs client identity or stake, which the protocol does not have.
"""

import math
from dataclasses import dataclass
from typing import Any

YEAR = 365 * 86400
DAY = 86400


class RewardsError(ValueError):
    """The reports cannot be paid as given: the sentence says which and why."""


@dataclass(frozen=True)
class Schedule:
    total_supply: float = 10e9
    provider_share: float = 0.6
    halving_seconds: int = YEAR
    genesis: int = 1_767_225_600  # 2026-01-01T00:00:00Z
    max_client_share: float = 0.25
    epoch_seconds: int = DAY

    @property
    def first_period_emission(self) -> float:
        return self.total_supply * self.provider_share / 2

    def emitted(self, start: float, end: float) -> float:
        """Provider tokens emitted over [start, end), splitting at halving boundaries."""
        start, end = max(start, self.genesis), max(end, self.genesis)
        total = 0.0
        t = start
        while t < end:
            period = int((t - self.genesis) // self.halving_seconds)
            boundary = self.genesis + (period + 1) * self.halving_seconds
            upto = min(end, boundary)
            if period > 1100:  # the rate is below the smallest float: nothing more is emitted
                break
            rate = math.ldexp(self.first_period_emission, -period) / self.halving_seconds
            total += rate * (upto - t)
            t = upto
        return total


def counted_bytes(sessions: list[dict[str, Any]], cap: float) -> float:
    """A provider's bytes after the per-client cap."""
    per_client: dict[str, int] = {}
    for s in sessions:
        per_client[s["client_key"]] = (
            per_client.get(s["client_key"], 0) + s["bytes_up"] + s["bytes_down"]
        )
    total = sum(per_client.values())
    return float(sum(min(b, cap * total) for b in per_client.values()))


def rewards(summaries: list[dict[str, Any]], schedule: Schedule) -> dict[str, Any]:
    """Rewards per epoch and provider from verified report summaries.

    Raises RewardsError for a report of another epoch length than the schedule's,
    or two reports of one provider for one epoch.
    """
    length = schedule.epoch_seconds
    by_epoch: dict[int, list[dict[str, Any]]] = {}
    for s in summaries:
        if s["epoch_seconds"] != length:
            raise RewardsError(
                f"the report of provider {s['provider_key'][:16]} for epoch {s['epoch']} has "
                f"{s['epoch_seconds']}-second epochs; the network's are {length} seconds"
            )
        reports = by_epoch.setdefault(s["epoch"], [])
        if any(r["provider_key"] == s["provider_key"] for r in reports):
            raise RewardsError(
                f"provider {s['provider_key'][:16]} has two reports for epoch {s['epoch']}"
            )
        reports.append(s)
    epochs = []
    totals: dict[str, float] = {}
    for epoch, reports in sorted(by_epoch.items()):
        pool = schedule.emitted(epoch * length, (epoch + 1) * length)
        counted = {
            r["provider_key"]: counted_bytes(r["sessions"], schedule.max_client_share)
            for r in reports
        }
        all_counted = sum(counted.values())
        shares = {p: (pool * c / all_counted if all_counted else 0.0) for p, c in counted.items()}
        for p, v in shares.items():
            totals[p] = totals.get(p, 0.0) + v
        epochs.append(
            {
                "epoch": epoch,
                "pool": pool,
                "providers": [
                    {
                        "provider_key": p,
                        "verified_bytes": next(
                            r["verified_bytes"] for r in reports if r["provider_key"] == p
                        ),
                        "counted_bytes": counted[p],
                        "reward": shares[p],
                    }
                    for p in sorted(counted)
                ],
            }
        )
    return {"epochs": epochs, "totals": totals}
