"""Small shared types of the core."""

from collections.abc import Callable
from typing import NamedTuple

# (host, port): host is an IPv4 or IPv6 address string, as the shell's socket gives it.
Endpoint = tuple[str, int]

UDP = "udp"  # the transport of WireGuard framing on plain UDP; the only one of stock peers
MASKED = "masked"  # the masked skin on UDP (protocol/skins/masked.py): native peers only
TCP = "tcp"  # masked datagrams in stream frames on TCP (protocol/skins/stream_ends.py)
TLS = "tls"  # the same frames inside a TLS 1.3 connection
RELAY = "relay"  # end-to-end datagrams in relay frames through a neighbour (node/core/relay.py)


class Path(NamedTuple):
    """How a datagram reached us, or how it is to leave: the transport that carries it
    (its name, which the shell maps to sockets or connections) and the remote address.

    The link never looks inside: it keys cookies (mac2) and roaming on `address` and
    hands `Path` values back with the datagrams it wants sent. A tuple, so the shell can
    build one per receive cheaply and compare it with `==`.
    """

    transport: str
    address: Endpoint

    def __str__(self) -> str:
        host, port = self.address
        if self.transport == RELAY:
            return f"relay://{host}"  # "VIA.END": two keys, no port
        text = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return text if self.transport == UDP else f"{self.transport}://{text}"

# The injected randomness: n -> n random bytes. The shell passes os.urandom;
# tests pass a seeded source so handshakes reproduce byte for byte.
RandomSource = Callable[[int], bytes]
