"""The per-source handshake rate limiter (protocol/link/ratelimiter.py) in virtual time:
wireguard-go's numbers, 20 a second per source with a burst of 5, IPv6 keyed by /64,
idle entries forgotten after a second, a bounded table."""

from tidewire.protocol.link.ratelimiter import RateLimiter, source_key


def allowed(rl: RateLimiter, address: str, count: int, *, now: float) -> int:
    return sum(rl.allow(address, now=now) for _ in range(count))


def test_a_burst_of_5_then_refused() -> None:
    rl = RateLimiter()
    assert allowed(rl, "192.0.2.7", 5, now=10.0) == 5
    assert not rl.allow("192.0.2.7", now=10.0)
    assert not rl.allow("192.0.2.7", now=10.049)


def test_refills_at_20_a_second() -> None:
    rl = RateLimiter()
    allowed(rl, "192.0.2.7", 5, now=0.0)
    assert rl.allow("192.0.2.7", now=0.05)  # one token after 1/20 s
    assert not rl.allow("192.0.2.7", now=0.05)
    # 1000 attempts a second from 0 to 9.999 s: the burst, then one every 1/20 s (199 of them)
    total = sum(allowed(rl, "192.0.2.8", 1, now=i / 1000) for i in range(10_000))
    assert total == 5 + 199


def test_the_bucket_never_holds_more_than_the_burst() -> None:
    rl = RateLimiter()
    rl.allow("192.0.2.7", now=0.0)
    assert allowed(rl, "192.0.2.7", 100, now=0.9) == 5  # 4 left + 18 refilled, capped at 5


def test_sources_have_their_own_buckets() -> None:
    rl = RateLimiter()
    assert allowed(rl, "192.0.2.7", 50, now=0.0) == 5
    assert allowed(rl, "192.0.2.8", 50, now=0.0) == 5


def test_ipv6_is_keyed_by_its_64() -> None:
    rl = RateLimiter()
    assert allowed(rl, "2001:db8:1:2::1", 3, now=0.0) == 3
    assert allowed(rl, "2001:db8:1:2:ffff:ffff:ffff:ffff", 5, now=0.0) == 2
    assert allowed(rl, "2001:db8:1:3::1", 5, now=0.0) == 5  # another /64
    assert source_key("2001:db8:1:2::1") == source_key("2001:db8:1:2:abcd::9")
    assert source_key("::ffff:192.0.2.7") == "192.0.2.7"


def test_idle_entries_are_forgotten_after_a_second() -> None:
    rl = RateLimiter()
    allowed(rl, "192.0.2.7", 5, now=0.0)
    allowed(rl, "192.0.2.8", 5, now=0.5)
    assert len(rl) == 2
    rl.allow("192.0.2.9", now=1.01)  # the sweep: .7 idle 1.01 s, .8 only 0.51 s
    assert len(rl) == 2
    rl.allow("192.0.2.9", now=2.1)  # .8 idle 1.6 s now; .9 seen at 1.01, idle 1.09 s
    assert len(rl) == 1


def test_the_table_is_bounded_and_evicts_the_least_recently_seen() -> None:
    rl = RateLimiter(max_entries=3)
    for i in range(3):
        allowed(rl, f"192.0.2.{i}", 5, now=0.0)
    rl.allow("192.0.2.0", now=0.001)  # refused, but seen most recently
    assert rl.allow("192.0.2.9", now=0.002)
    assert len(rl) == 3 and rl.evicted == 1
    assert not rl.allow("192.0.2.0", now=0.003)  # still tracked: still empty
    assert rl.allow("192.0.2.1", now=0.003)  # evicted: comes back with a fresh bucket
    assert len(rl) == 3
