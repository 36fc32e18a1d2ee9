"""Handshake throughput of the sans-IO core on one core (no network, no other load):

- responder handshakes per second: valid initiations from 500 distinct peers, each
  answered with a response (two X25519 per initiation plus one per response, all the
  Noise hashing, the replay and flood checks);
- cookie replies per second under load: initiations with a valid mac1 and random
  contents, as a flood sends them, answered with cookie replies and no Diffie-Hellman
  (from many source addresses, so the per-source cookie limiter lets them all through);
- refusals per second under load: initiations with a valid mac2 from one address, as a
  flood from an attacker holding a cookie sends them, past its rate limit (ratelimiter.py).

    .venv/bin/python netns-lab/bench_handshake.py
"""

import os
import time

from tidewire.protocol.link.cookie import CookieGenerator
from tidewire.protocol.link.crypto import clamp, mac, public_key
from tidewire.protocol.link.device import Device
from tidewire.protocol.link.load import HandshakeLoad
from tidewire.protocol.link.messages import parse_cookie_reply
from tidewire.protocol.link.peer import PeerConfig
from tidewire.protocol.link.profile import WIREGUARD
from tidewire.protocol.types import UDP, Path

PEERS = 500


def main() -> None:
    responder_key = clamp(os.urandom(32))
    responder = Device(private_key=responder_key, rng=os.urandom, wall_offset=time.time())
    responder.load = HandshakeLoad(threshold=10**9)  # the DH cost alone, never under load
    initiators = []
    for _ in range(PEERS):
        k = clamp(os.urandom(32))
        dev = Device(private_key=k, rng=os.urandom, wall_offset=time.time())
        peer = dev.add_peer(
            PeerConfig(public_key=public_key(responder_key), endpoint=("192.0.2.1", 51820))
        )
        responder.add_peer(PeerConfig(public_key=public_key(k)))
        dev.initiate(peer, now=0.0)
        initiators.append(dev.datagrams_to_send()[0][0])
    start = time.perf_counter()
    for i, msg in enumerate(initiators):
        responder.receive_datagram(msg, Path(UDP, ("198.51.100.9", 1000 + i)), now=1.0)
    elapsed = time.perf_counter() - start
    sent = responder.counters["responses_sent"]
    assert sent == PEERS, responder.drops
    print(f"responder handshakes: {sent / elapsed:,.0f} per second ({PEERS} in {elapsed:.3f} s)")

    flood = [bytearray(m) for m in initiators]
    for m in flood:
        m[8:40] = os.urandom(32)  # another ephemeral: would fail to decrypt
        m[-32:-16] = mac(
            responder.checkers[next(iter(responder.checkers))].mac1_key, bytes(m[:-32])
        )
    start = time.perf_counter()
    n = 0
    for r in range(20):
        for i, m in enumerate(flood):
            path = Path(UDP, (f"10.{r}.{i // 250}.{i % 250}", 1000))
            responder.receive_datagram(bytes(m), path, now=2.0, under_load=True)
            n += 1
        responder.datagrams_to_send()
    elapsed = time.perf_counter() - start
    rate = responder.counters["cookie_replies_sent"] / elapsed
    print(f"cookie replies under a flood: {rate:,.0f} per second")
    print(f"(of {n} flood initiations: {dict(responder.drops)})")

    attacker = Path(UDP, ("198.18.0.7", 40000))
    gen = CookieGenerator(WIREGUARD, public_key(responder_key))
    first = bytearray(flood[0])
    gen.add_macs(first, now=3.0)
    responder.receive_datagram(bytes(first), attacker, now=3.0, under_load=True)
    gen.consume_reply(parse_cookie_reply(responder.datagrams_to_send()[0][0]), now=3.0)
    for m in flood:
        gen.add_macs(m, now=3.0)  # a valid mac2 on every one
    responder.drops.clear()
    start = time.perf_counter()
    for _ in range(20):
        for m in flood:
            responder.receive_datagram(bytes(m), attacker, now=3.0, under_load=True)
    elapsed = time.perf_counter() - start
    limited = responder.drops["initiation_rate_limited"]
    print(f"valid-mac2 flood refused by the rate limiter: {n / elapsed:,.0f} per second")
    print(f"(of {n}: {limited} refused, {n - limited} on to the Diffie-Hellman)")


if __name__ == "__main__":
    main()
