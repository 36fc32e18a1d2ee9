"""A plain node (UDP skin, no TLS) never imports `cryptography` when the native module
is built: the link's AEAD is the native class (protocol/link/aead.py), and the masked
skin, the stream skin and the TLS certificate import `cryptography` only when used
(issue 15's memory: its Rust module and OpenSSL are 6-7 MB). Each case runs in a fresh
interpreter, so other tests' imports do not count."""

import textwrap

import pytest

from tidewire.protocol.link import aead

from .test_lazy_modules import _python

pytestmark = pytest.mark.skipif(
    aead.BACKEND != aead.NATIVE, reason="the native module (with its AEAD) is not built"
)

# a plain node's pieces: the daemon and its components imported, the data plane chosen,
# the UDP and masked transports made (every node holds its own masked skin), two
# Devices through a handshake and a transport packet each way, a forged one dropped
_PLAIN_NODE = textwrap.dedent(
    """
    import os, sys
    from collections import Counter
    import tidewire.cli.main, tidewire.node.daemon, tidewire.node.components
    from tidewire.node.dataplane import choose
    from tidewire.node.transports.masked import MaskedTransport
    from tidewire.node.transports.udp import UdpTransport
    from tidewire.protocol.link.crypto import clamp, public_key
    from tidewire.protocol.link.device import Device
    from tidewire.protocol.link.peer import PeerConfig
    from tidewire.protocol.types import UDP, Path

    plane = choose(None)
    UdpTransport(Counter())
    MaskedTransport(Counter(), own_public=bytes(32))
    ka, kb = clamp(bytes(range(32))), clamp(bytes(range(1, 33)))
    a = Device(private_key=ka, rng=os.urandom)
    b = Device(private_key=kb, rng=os.urandom)
    pa = a.add_peer(PeerConfig(public_key=public_key(kb), endpoint=("10.0.0.2", 51820)))
    pb = b.add_peer(PeerConfig(public_key=public_key(ka)))
    a.initiate(pa, now=0.0)
    for src, dst, addr in ((a, b, "10.0.0.1"), (b, a, "10.0.0.2"), (a, b, "10.0.0.1")):
        for data, _ in src.datagrams_to_send():
            dst.receive_datagram(data, Path(UDP, (addr, 51820)), now=0.0)
    sealed = b.encrypt(pb, bytes(40), now=1.0)
    forged = sealed[:-1] + bytes([sealed[-1] ^ 1])
    a.receive_datagram(sealed, Path(UDP, ("10.0.0.2", 51820)), now=1.0)
    a.receive_datagram(forged, Path(UDP, ("10.0.0.2", 51820)), now=1.0)
    print(plane.name, pa.current is not None, "cryptography" in sys.modules)
    """
)


def test_a_plain_node_never_imports_cryptography() -> None:
    assert _python(_PLAIN_NODE).splitlines() == ["native True False"]


@pytest.mark.parametrize(
    "use",
    [
        "from tidewire.protocol.skins.masked import MaskedSkin\n"
        "MaskedSkin(bytes(32)).decoy(rng=os.urandom)",
        "from tidewire.protocol.skins.stream import StreamFramer\n"
        "StreamFramer(bytes(32), nonce=bytes(16), direction=0).frame(bytes(100))",
        "import tempfile, pathlib\n"
        "from tidewire.node.transports.certificate import ensure_self_signed\n"
        "ensure_self_signed(pathlib.Path(tempfile.mkdtemp()))",
    ],
    ids=["masked", "stream", "certificate"],
)
def test_a_skin_or_certificate_imports_cryptography_when_used(use: str) -> None:
    code = _PLAIN_NODE + "\n" + use + '\nprint("cryptography" in sys.modules)\n'
    assert _python(code).splitlines() == ["native True False", "True"]
