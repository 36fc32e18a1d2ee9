"""What every transport under the link offers the data path (wireguard-go's conn.Bind).

A transport carries datagrams of the link to and from remote addresses: today plain UDP
(`udp.UdpTransport`); the skins of the adaptive-tunneling work (masked UDP, TCP, TLS)
come in as more transports behind the same two interfaces. The link never knows which
transport carried a datagram: it sees a `Path` (transport name, remote address), hands
`Path`s back with what it wants sent, and the data path maps `path.transport` to the
transport object here.
"""

from typing import Protocol

from tidewire.protocol.types import Endpoint, Path


class Receiver(Protocol):
    """The data path, as a transport's reader sees it."""

    def receive(self, data: bytes, path: Path, *, now: float, ecn: int = 0) -> bool:
        """One datagram from the network, with the ECN field of its outer header where the
        transport can read it (0, Not-ECT, where it cannot); True if it carried inner data
        (not a handshake, keepalive or anything refused)."""
        ...

    def receive_batch(self, datagrams: list[bytes], path: Path, *, now: float, ecn: int) -> bool:
        """The transport data messages (type 4) of one read, in order, all from `path` with
        one outer ECN field (a UDP GRO buffer); True if any carried inner data."""
        ...

    def shed(self, *, now: float) -> None:
        """A handshake message the transport dropped unread (its per-batch budget was
        spent): not delivered, but load on the link all the same."""
        ...

    def after_batch(self, *, data: bool) -> None:
        """A batch of reads is done: flush what it produced."""
        ...


class Transport(Protocol):
    name: str

    def add(self, data: bytes, address: Endpoint, ecn: int = 0) -> None:
        """Queue a datagram; it leaves at the next `flush` (so runs can be batched). `ecn`
        is the inner packet's ECN field, for the outer header where the transport can set
        it (RFC 6040 section 4.1); a stream transport ignores it."""
        ...

    def send_now(self, data: bytes, address: Endpoint) -> None:
        """Send one datagram at once (handshakes, control messages)."""
        ...

    def flush(self) -> None: ...

    async def serve(self, receiver: Receiver) -> None:
        """Read until cancelled, handing every datagram to `receiver`."""
        ...

    def close(self) -> None: ...
