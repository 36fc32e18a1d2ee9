"""The `tcp` transport: masked datagrams in stream frames on plain TCP.

Everything is in stream.py; the skin itself is protocol/skins/stream_ends.py. The
client's first bytes are a printable token (protocol/skins/stream.py), so the first
packet is exempt under the published rules of Wu et al. (USENIX Security 2023); a
connection that does not authenticate within AUTH_TIMEOUT is closed without a byte
of reply, as a server that is not there would.
"""

from tidewire.node.transports.stream import StreamTransport
from tidewire.protocol.types import TCP


class TcpTransport(StreamTransport):
    name = TCP
