"""Open admission on a provider (`[exit] open = true`), sans-IO: which strangers get in.

A native initiation from a key the provider has no peer for (handshake_receive.py's
`stranger` hook) has already authenticated: the sender holds the private key of the
static key it names. With open admission the provider makes it a dynamic peer, then
holds it to `max_clients`, the credit window and receipts like any configured client.

Addresses: a dynamic client has no configured allowed IPs, so both ends derive them
from the client's public key (`client_addresses`): an IPv4 host in 100.64.0.0/10 and
an IPv6 host in fd74:7701::/32 (beside the overlay's fd74:7700::/32), from BLAKE2s of
the key. The client puts them on its TUN when `[routing]` is set; the provider routes
the two pools into its TUN once and holds each client to its own two addresses. Two
keys that derive the same IPv4 address cannot both be in: the second is refused and
counted (a 22-bit space: about one clash in 2,000 pairs at 65 clients).

Bounds: at most `cap` dynamic peers. A stranger that finds the table full takes the
place of the oldest dynamic peer that is idle (no live session) or half-open (its
handshake was answered EVICT_HALF_OPEN seconds ago and no data confirmed it: a flood
of initiations from random keys costs itself its own places); if there is none, it is
refused and counted. Dynamic peers idle for IDLE seconds are forgotten (`sweep`).
"""

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from tidewire.protocol.link.crypto import blake2s

POOL4 = IPv4Network("100.64.0.0/10")
POOL6 = IPv6Network("fd74:7701::/32")
EVICT_HALF_OPEN = 5.0  # s: an answered initiation that no data followed
IDLE = 30.0  # s with no live session before a dynamic peer is forgotten
SWEEP = 5.0  # s between sweeps while any dynamic peer exists
DEFAULT_CAP = 256


def client_addresses(public_key: bytes) -> tuple[IPv4Address, IPv6Address]:
    """The tunnel addresses an openly admitted client holds (module comment)."""
    digest = blake2s(b"tidewire open client v1" + public_key).digest()
    host4 = int.from_bytes(digest[:4], "big") & ((1 << 22) - 1)
    host4 = min(max(host4, 1), (1 << 22) - 2)  # neither the pool's first nor its last
    host6 = int.from_bytes(digest[4:16], "big")
    return POOL4[host4], POOL6[host6 or 1]


@dataclass(slots=True)
class _Dynamic:
    admitted: float
    idle_since: float | None = None


@dataclass
class OpenAdmission:
    """`live(key, now)`: the peer holds a session data can use; `confirmed(key)`: data
    has come on its newest session (not only a handshake)."""

    live: Callable[[bytes, float], bool]
    confirmed: Callable[[bytes], bool]
    cap: int = DEFAULT_CAP
    dynamic: dict[bytes, _Dynamic] = field(default_factory=dict)
    by_address: dict[IPv4Address, bytes] = field(default_factory=dict)
    counters: Counter[str] = field(default_factory=Counter)
    next_sweep: float | None = None

    def decide(self, key: bytes, *, now: float) -> tuple[bool, bytes | None]:
        """(admit?, a dynamic peer to forget first to make room)."""
        v4, _ = client_addresses(key)
        holder = self.by_address.get(v4)
        if holder is not None and holder != key:
            self.counters["refused_address_taken"] += 1
            return False, None
        evict = None
        if len(self.dynamic) >= self.cap:
            evict = self._evictable(now=now)
            if evict is None:
                self.counters["refused_full"] += 1
                return False, None
            self.counters["evicted"] += 1
        return True, evict

    def _evictable(self, *, now: float) -> bytes | None:
        for k, d in sorted(self.dynamic.items(), key=lambda kv: kv[1].admitted):
            if not self.live(k, now):
                return k
            if not self.confirmed(k) and now - d.admitted >= EVICT_HALF_OPEN:
                return k
        return None

    def admitted(self, key: bytes, *, now: float) -> None:
        self.dynamic[key] = _Dynamic(now)
        if self.next_sweep is None:
            self.next_sweep = now + SWEEP
        self.by_address[client_addresses(key)[0]] = key
        self.counters["admitted"] += 1

    def forgotten(self, key: bytes) -> None:
        if self.dynamic.pop(key, None) is not None:
            self.by_address.pop(client_addresses(key)[0], None)

    def get_timer(self) -> float | None:
        return self.next_sweep

    def sweep(self, *, now: float) -> list[bytes]:
        """The dynamic peers idle for IDLE seconds: the shell forgets them."""
        out = []
        for k, d in self.dynamic.items():
            if self.live(k, now):
                d.idle_since = None
            elif d.idle_since is None:
                d.idle_since = max(now, d.admitted)
            elif now - d.idle_since >= IDLE:
                out.append(k)
        self.counters["forgotten_idle"] += len(out)
        self.next_sweep = now + SWEEP if len(self.dynamic) > len(out) else None
        return out
