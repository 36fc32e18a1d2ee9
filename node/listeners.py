"""What the node listens on: the stream transports (tcp and tls, which every node
dials with, listening where configured) and the listeners as URLs for `status` and
the node's record. The UDP and masked sockets are bound in the daemon's start-up."""

from collections import Counter
from typing import TYPE_CHECKING

from tidewire.node.errors import NodeError
from tidewire.node.host import off_loop
from tidewire.node.transports.stream import StreamTransport
from tidewire.node.transports.tcp import TcpTransport
from tidewire.node.transports.tls import TlsTransport

if TYPE_CHECKING:
    from tidewire.node.daemon import Daemon


def listening(daemon: "Daemon") -> list[str]:
    """What the node listens on, as URLs (the masked dialling socket is not a listener)."""
    out = [f"udp://0.0.0.0:{daemon.listen_port}"]
    if daemon.masked is not None and daemon.masked.listening:
        out.append(f"masked://0.0.0.0:{daemon.masked.port}")
    out += [f"{t.name}://0.0.0.0:{t.port}" for t in daemon.streams if t.listening]
    return out


async def open_streams(daemon: "Daemon", public_key: bytes) -> list[StreamTransport]:
    """The tcp and tls transports (every node dials with them), listening where
    configured; a tls listener without a configured certificate makes its own."""
    cfg = daemon.cfg
    tcp = TcpTransport(Counter(), own_public=public_key)
    tls = TlsTransport(Counter(), own_public=public_key)
    tcp.mark = tls.mark = daemon.mark
    if cfg.tcp_port is not None:
        tcp.listen(cfg.tcp_port, mark=daemon.mark)
    if cfg.tls_port is not None:
        cert, key = cfg.tls.certificate, cfg.tls.key
        if cert is None or key is None:
            from tidewire.node.transports.certificate import ensure_self_signed

            try:
                cert, key = await off_loop(ensure_self_signed, cfg.state_dir / cfg.name)
            except OSError as exc:
                raise NodeError(f"cannot make a TLS certificate: {exc}") from None
        tls.use_certificate(cert, key)
        tls.fallback = cfg.tls.fallback
        tls.listen(cfg.tls_port, mark=daemon.mark)
    return [tcp, tls]
