"""The operator's `[share]` settings: how much of the uplink clients get, and when.

Rates are written as people write them ("50 Mbit/s", "1.5 Gbit/s", "800 kbit/s",
"10 MB/s": decimal SI prefixes of either case, bits as bit/b/bps, bytes as B/byte/Bps)
and kept in bytes per second; None is unlimited. A quota is bytes per day or month
("500 GB/month", "20 GiB/day"; decimal or binary prefixes) for all clients together.

A schedule is a list of windows in the node's local time, [from, to) in minutes of the
day; a window whose `to` is before its `from` crosses midnight. Each window keeps its
own rates, resolved at load time (a direction a window leaves out keeps the base rate),
so `rates_at` is a lookup and `next_change` the distance to the next boundary where the
rates differ. `QuotaPeriod` tells the UTC bounds of the day or month a date falls in.

Parsing here raises ValueError with the reason; toml_provider.py adds the file, line and key.
Nothing here reads a clock: the node passes the minute of the day and the date.
"""

import re
from dataclasses import dataclass
from enum import Enum

MINUTES_PER_DAY = 1440
Rate = int | None  # bytes per second; None is unlimited

_NUMBER = r"(\d{1,15}(?:\.\d{1,9})?)"
_RATE = re.compile(_NUMBER + r"\s*([kKmMgGtT]?)(bit|b|B|byte|bytes)(/s|ps)")
_SIZE = re.compile(_NUMBER + r"\s*([kKmMgGtTpP]?)(i?)(B|byte|bytes)")
_QUOTA = re.compile(r"(.+?)\s*/\s*([a-z]+)")
_TIME = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
_DECIMAL = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}
_BINARY = {"k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40, "p": 2**50}
RATE_EXAMPLE = 'a rate like "50 Mbit/s", "800 kbit/s" or "10 MB/s"'


class QuotaPeriod(Enum):
    DAY = "day"
    MONTH = "month"

    def bounds(self, year: int, month: int, day: int) -> tuple[int, int]:
        """The UTC period holding the date: (start, end) in Unix seconds, end excluded.
        Raises ValueError for a date that does not exist."""
        import calendar  # here: a running node loads it only with a quota

        if not 1 <= month <= 12 or not 1 <= day <= calendar.monthrange(year, month)[1]:
            raise ValueError(f"{year:04d}-{month:02d}-{day:02d} is not a date")
        if self is QuotaPeriod.DAY:
            start = calendar.timegm((year, month, day, 0, 0, 0))
            return start, start + 86400
        start = calendar.timegm((year, month, 1, 0, 0, 0))
        end = calendar.timegm((year + month // 12, month % 12 + 1, 1, 0, 0, 0))
        return start, end


@dataclass(frozen=True)
class Quota:
    bytes: int  # for all clients together, per period
    period: QuotaPeriod


@dataclass(frozen=True)
class Window:
    start: int  # minute of the day, included
    end: int  # minute of the day, excluded; end < start crosses midnight
    download: Rate  # resolved: the window's own rate or the base rate
    upload: Rate

    def covers(self, minute: int) -> bool:
        if self.start < self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end


@dataclass(frozen=True)
class ShareConfig:
    download: Rate = None
    upload: Rate = None
    per_client: Rate = None  # a cap in each direction for each client key
    max_clients: int | None = None
    quota: Quota | None = None
    schedule: tuple[Window, ...] = ()


def parse_rate(text: str) -> Rate:
    """A rate in bytes per second ("unlimited" is None); ValueError names the problem."""
    value = text.strip()
    if value == "unlimited":
        return None
    m = _RATE.fullmatch(value)
    if not m:
        if re.fullmatch(r"\d[\d.]*\s*[kKmMgGtT]i\w*/s", value):
            raise ValueError(f"{text!r} uses a binary prefix; rates take decimal ones (Mbit/s)")
        raise ValueError(f"{text!r} is not {RATE_EXAMPLE}")
    number, prefix, unit, _ = m.groups()
    bits = unit in ("bit", "b")
    rate = _scaled(number, _DECIMAL[prefix.lower()], 8 if bits else 1)
    if rate <= 0:
        raise ValueError(f"{text!r} is less than one byte per second")
    return rate


def parse_size(text: str) -> int:
    """A number of bytes ("500 GB", "20 GiB"); ValueError names the problem."""
    m = _SIZE.fullmatch(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a size like \"500 GB\" or \"20 GiB\"")
    number, prefix, binary, _ = m.groups()
    if binary and not prefix:
        raise ValueError(f"{text!r} is not a size like \"500 GB\" or \"20 GiB\"")
    scale = _BINARY[prefix.lower()] if binary else _DECIMAL[prefix.lower()]
    return _scaled(number, scale)


def _scaled(number: str, scale: int, divisor: int = 1) -> int:
    """`number` (digits, perhaps a fraction) times scale over divisor, rounded down, in
    exact integers: the decimal module would cost a provider 0.4 MiB of memory."""
    whole, _, fraction = number.partition(".")
    tenths: int = 10 ** len(fraction)
    return int(whole + fraction) * scale // (tenths * divisor)


def parse_quota(text: str) -> Quota:
    m = _QUOTA.fullmatch(text.strip())
    if not m:
        raise ValueError(f'{text!r} is not a quota like "500 GB/month" or "20 GiB/day"')
    size, period = m.groups()
    if size.lstrip().startswith("-"):
        raise ValueError(f"{text!r} must be more than zero bytes")
    if period not in ("day", "month"):
        raise ValueError(f"{period!r} is not a period (day or month)")
    amount = parse_size(size)
    if amount <= 0:
        raise ValueError(f"{text!r} must be more than zero bytes")
    return Quota(amount, QuotaPeriod(period))


def parse_time(text: str) -> int:
    """"HH:MM" (00:00 to 23:59) as a minute of the day."""
    m = _TIME.fullmatch(text.strip())
    if not m:
        raise ValueError(f'{text!r} is not a time of day "HH:MM" from 00:00 to 23:59')
    return int(m.group(1)) * 60 + int(m.group(2))


def _spans(w: Window) -> list[tuple[int, int]]:
    if w.start < w.end:
        return [(w.start, w.end)]
    return [(w.start, MINUTES_PER_DAY), (0, w.end)] if w.end else [(w.start, MINUTES_PER_DAY)]


def overlap(a: Window, b: Window) -> bool:
    return any(s1 < e2 and s2 < e1 for s1, e1 in _spans(a) for s2, e2 in _spans(b))


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def describe(w: Window) -> str:
    return f"{_hhmm(w.start)}-{_hhmm(w.end)}"


def _check_minute(minute_of_day: int) -> None:
    if not 0 <= minute_of_day < MINUTES_PER_DAY:
        raise ValueError(f"minute_of_day {minute_of_day} is not in 0-1439")


def rates_at(share: ShareConfig, *, minute_of_day: int) -> tuple[Rate, Rate]:
    """(download, upload) in bytes per second at that local minute; None is unlimited."""
    _check_minute(minute_of_day)
    for w in share.schedule:
        if w.covers(minute_of_day):
            return w.download, w.upload
    return share.download, share.upload


def next_change(share: ShareConfig, *, minute_of_day: int) -> int | None:
    """Minutes from the start of `minute_of_day` until `rates_at` gives other rates
    (1 to 1439), or None if they never change."""
    now = rates_at(share, minute_of_day=minute_of_day)
    ahead = sorted(
        (edge - minute_of_day) % MINUTES_PER_DAY or MINUTES_PER_DAY
        for w in share.schedule
        for edge in (w.start, w.end)
    )
    for minutes in ahead:
        at = (minute_of_day + minutes) % MINUTES_PER_DAY
        if rates_at(share, minute_of_day=at) != now:
            return minutes
    return None
