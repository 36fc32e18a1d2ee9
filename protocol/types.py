"""Small shared types of the core."""

from collections.abc import Callable

# (host, port): host is an IPv4 or IPv6 address string, as the shell's socket gives it.
Endpoint = tuple[str, int]

# The injected randomness: n -> n random bytes. The shell passes os.urandom;
# tests pass a seeded source so handshakes reproduce byte for byte.
RandomSource = Callable[[int], bytes]
