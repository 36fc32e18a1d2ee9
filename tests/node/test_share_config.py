"""[share]: rates as people write them, in bytes per second; quotas and their periods; the
schedule and its helpers; every mistake one sentence with the file, line and key."""

import base64
import calendar
from pathlib import Path

import pytest

from tidewire.node.config import ConfigError, load
from tidewire.node.config.share import (
    Quota,
    QuotaPeriod,
    ShareConfig,
    Window,
    next_change,
    parse_rate,
    rates_at,
)

KEY = base64.b64encode(bytes(range(32))).decode()
BASE = f'[interface]\nname = "tw9"\nprivate_key = "{KEY}"\n\n'


def load_share(tmp_path: Path, body: str) -> ShareConfig:
    p = tmp_path / "node.toml"
    p.write_text(BASE + "[share]\n" + body)
    return load(p).share


@pytest.mark.parametrize(
    ("text", "bytes_per_second"),
    [
        ("50 Mbit/s", 6_250_000),
        ("1.5 Gbit/s", 187_500_000),
        ("800 kbit/s", 100_000),
        ("800 Kbit/s", 100_000),
        ("100 mbit/s", 12_500_000),  # tc's spelling
        ("20Mbps", 2_500_000),
        ("10 Mb/s", 1_250_000),
        ("10 MB/s", 10_000_000),
        ("10 MBps", 10_000_000),
        ("2 GB/s", 2_000_000_000),
        ("64 kbyte/s", 64_000),
        ("8 bit/s", 1),
        ("unlimited", None),
    ],
)
def test_rates_in_bytes_per_second(text: str, bytes_per_second: int | None) -> None:
    assert parse_rate(text) == bytes_per_second


def test_full_share_table(tmp_path: Path) -> None:
    share = load_share(
        tmp_path,
        'download = "50 Mbit/s"\nupload = "10 Mbit/s"\nper_client = "20 Mbit/s"\n'
        'max_clients = 8\nquota = "500 GB/month"\n'
        'schedule = [{ from = "23:00", to = "07:00", download = "200 Mbit/s" },\n'
        '            { from = "12:00", to = "13:00", upload = "unlimited" }]\n',
    )
    assert share == ShareConfig(
        download=6_250_000,
        upload=1_250_000,
        per_client=2_500_000,
        max_clients=8,
        quota=Quota(500 * 10**9, QuotaPeriod.MONTH),
        schedule=(
            Window(23 * 60, 7 * 60, 25_000_000, 1_250_000),  # upload: the base rate
            Window(12 * 60, 13 * 60, 6_250_000, None),
        ),
    )


def test_defaults_are_unlimited(tmp_path: Path) -> None:
    p = tmp_path / "node.toml"
    p.write_text(BASE)
    assert load(p).share == ShareConfig(None, None, None, None, None, ())
    assert load_share(tmp_path, "").quota is None


def test_binary_quota_per_day(tmp_path: Path) -> None:
    assert load_share(tmp_path, 'quota = "20 GiB/day"\n').quota == Quota(
        20 * 2**30, QuotaPeriod.DAY
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('download = "fast"\n', "6: [share] download: 'fast' is not a rate like"),
        ('upload = 50\n', '6: [share] upload: must be a rate in quotes, like "50 Mbit/s"'),
        ('download = "50 Mibit/s"\n', "6: [share] download: '50 Mibit/s' uses a binary prefix"),
        ('download = "0 Mbit/s"\n', "6: [share] download: '0 Mbit/s' is less than one byte"),
        ('download = "-5 Mbit/s"\n', "6: [share] download: '-5 Mbit/s' is not a rate"),
        ('per_client = "50 Mbit"\n', "6: [share] per_client: '50 Mbit' is not a rate"),
        ("max_clients = 0\n", "6: [share] max_clients: must be an integer from 1 to"),
        ('quota = "0 GB/month"\n', "6: [share] quota: '0 GB/month' must be more than zero"),
        ('quota = "-5 GB/month"\n', "6: [share] quota: '-5 GB/month' must be more than zero"),
        ('quota = "5 GB/week"\n', "6: [share] quota: 'week' is not a period (day or month)"),
        ('quota = "5 Gbit/day"\n', "6: [share] quota: '5 Gbit' is not a size"),
        ('quota = "lots"\n', "6: [share] quota: 'lots' is not a quota like"),
        ('burst = "1 MB/s"\n', "6: [share] burst: unknown key (known: download, max_clients,"),
        (
            'upload = "1 MB/s"\nschedule = [{ from = "00:00", to = "07:00", upload = "2 MB/s" },'
            ' { from = "06:00", to = "08:00", upload = "1 MB/s" }]\n',
            "7: [share] schedule: window #2 (06:00-08:00) overlaps window #1 (00:00-07:00)",
        ),
        (  # both cross midnight
            'schedule = [{ from = "22:00", to = "02:00", upload = "2 MB/s" },\n'
            '  { from = "23:30", to = "00:30", upload = "1 MB/s" }]\n',
            "6: [share] schedule: window #2 (23:30-00:30) overlaps window #1 (22:00-02:00)",
        ),
        (  # one crosses midnight, the other sits in its morning part
            'schedule = [{ from = "22:00", to = "02:00", upload = "2 MB/s" },\n'
            '  { from = "01:00", to = "03:00", upload = "1 MB/s" }]\n',
            "6: [share] schedule: window #2 (01:00-03:00) overlaps window #1 (22:00-02:00)",
        ),
        (
            'schedule = [{ from = "7:00", to = "08:00", upload = "2 MB/s" }]\n',
            "6: [share] schedule: window #1 from: '7:00' is not a time of day",
        ),
        (
            'schedule = [{ from = "07:00", to = "24:00", upload = "2 MB/s" }]\n',
            "6: [share] schedule: window #1 to: '24:00' is not a time of day",
        ),
        (
            'schedule = [{ from = "07:00", upload = "2 MB/s" }]\n',
            "6: [share] schedule: window #1 to: is required",
        ),
        (
            'schedule = [{ from = "07:00", to = "07:00", upload = "2 MB/s" }]\n',
            "6: [share] schedule: window #1 to: is the same time as from",
        ),
        (
            'schedule = [{ from = "07:00", to = "08:00", up = "2 MB/s" }]\n',
            "6: [share] schedule: window #1 up: unknown key",
        ),
        (
            'schedule = [{ from = "07:00", to = "08:00", upload = "2 MB" }]\n',
            "6: [share] schedule: window #1 upload: '2 MB' is not a rate",
        ),
        ('schedule = "nights"\n', "6: [share] schedule: must be a list of windows"),
    ],
)
def test_share_errors_name_file_line_and_key(tmp_path: Path, body: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_share(tmp_path, body)
    assert str(err.value).startswith(f"{tmp_path}/node.toml:{expected}"), str(err.value)
    assert "\n" not in str(err.value)


def test_share_must_be_a_table(tmp_path: Path) -> None:
    p = tmp_path / "node.toml"
    p.write_text('share = "all of it"\n' + BASE)
    with pytest.raises(ConfigError, match="share: must be a table"):
        load(p)


NIGHT = ShareConfig(
    download=1000,
    upload=100,
    schedule=(Window(23 * 60, 7 * 60, 5000, 500), Window(12 * 60, 13 * 60, 1000, None)),
)


@pytest.mark.parametrize(
    ("minute", "rates", "until"),
    [
        (0, (5000, 500), 7 * 60),  # in the night window, which ends at 07:00
        (7 * 60 - 1, (5000, 500), 1),
        (7 * 60, (1000, 100), 5 * 60),  # base rates until noon
        (12 * 60 + 30, (1000, None), 30),
        (13 * 60, (1000, 100), 10 * 60),
        (23 * 60, (5000, 500), 8 * 60),  # crossing midnight
        (1439, (5000, 500), 7 * 60 + 1),
    ],
)
def test_rates_at_and_next_change(minute: int, rates: tuple[int, int | None], until: int) -> None:
    assert rates_at(NIGHT, minute_of_day=minute) == rates
    assert next_change(NIGHT, minute_of_day=minute) == until
    later = (minute + until) % 1440
    assert rates_at(NIGHT, minute_of_day=later) != rates
    assert rates_at(NIGHT, minute_of_day=(later - 1) % 1440) == rates


def test_next_change_skips_boundaries_that_change_nothing() -> None:
    same = ShareConfig(download=1000, schedule=(Window(60, 120, 1000, None),))
    assert next_change(same, minute_of_day=0) is None
    back_to_back = ShareConfig(
        download=1, schedule=(Window(60, 120, 9, None), Window(120, 180, 9, None))
    )
    assert next_change(back_to_back, minute_of_day=60) == 120
    assert next_change(ShareConfig(), minute_of_day=5) is None


def test_minute_of_day_out_of_range_is_a_local_error() -> None:
    with pytest.raises(ValueError):
        rates_at(NIGHT, minute_of_day=1440)


def utc(*date: int) -> int:
    return calendar.timegm((*date, 0, 0, 0))


@pytest.mark.parametrize(
    ("period", "date", "bounds"),
    [
        (QuotaPeriod.DAY, (2026, 3, 14), (utc(2026, 3, 14), utc(2026, 3, 15))),
        (QuotaPeriod.DAY, (2026, 12, 31), (utc(2026, 12, 31), utc(2027, 1, 1))),
        (QuotaPeriod.MONTH, (2026, 3, 14), (utc(2026, 3, 1), utc(2026, 4, 1))),
        (QuotaPeriod.MONTH, (2026, 12, 31), (utc(2026, 12, 1), utc(2027, 1, 1))),
        (QuotaPeriod.MONTH, (2024, 2, 29), (utc(2024, 2, 1), utc(2024, 3, 1))),
    ],
)
def test_quota_period_bounds(
    period: QuotaPeriod, date: tuple[int, int, int], bounds: tuple[int, int]
) -> None:
    assert period.bounds(*date) == bounds


def test_quota_period_known_answer_and_bad_dates() -> None:
    assert QuotaPeriod.DAY.bounds(2026, 3, 14) == (1_773_446_400, 1_773_532_800)  # `date -u -d`
    assert QuotaPeriod.MONTH.bounds(2024, 2, 10)[1] - QuotaPeriod.MONTH.bounds(2024, 2, 10)[0] == (
        29 * 86400
    )
    for bad in ((2025, 2, 29), (2026, 13, 1), (2026, 4, 31), (2026, 1, 0)):
        with pytest.raises(ValueError):
            QuotaPeriod.MONTH.bounds(*bad)
