"""A plain node (UDP skin, no TLS) never imports `cryptography` when the native module
is built: the link's AEAD is the native class (protocol/link/aead.py), and the masked
skin, the stream skin and the TLS certificate import `cryptography` only when used
(issue 15's memory: its Rust module and OpenSSL are 6-7 MB). Nor does it load Babel's
modules (node/components.py imports them for a node with a neighbour). Each case runs
in a fresh interpreter, so other tests' imports do not count."""

import textwrap

import pytest

from tidewire.protocol.link import aead

from .test_lazy_modules import _python

pytestmark = pytest.mark.skipif(
    aead.choose()[0] != aead.NATIVE, reason="the native module (with its AEAD) is not built"
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
    babel = "tidewire.node.core.routing.babel" in sys.modules
    print(plane.name, pa.current is not None, "cryptography" in sys.modules, babel)
    """
)


def test_a_plain_node_imports_neither_cryptography_nor_babel() -> None:
    assert _python(_PLAIN_NODE).splitlines() == ["native True False False"]


_AFTER = """
from tidewire.protocol.link import aead
print("cryptography" in sys.modules, aead.BACKEND)
"""


@pytest.mark.parametrize(
    ("use", "use_switches"),
    [
        (
            "from tidewire.protocol.skins.masked import MaskedSkin\n"
            "MaskedSkin(bytes(32)).decoy(rng=os.urandom)",
            True,
        ),
        (
            "from tidewire.protocol.skins.stream import StreamFramer\n"
            "StreamFramer(bytes(32), nonce=bytes(16), direction=0).frame(bytes(100))",
            True,
        ),
        (
            "import tempfile, pathlib\n"
            "from tidewire.node.transports.certificate import ensure_self_signed\n"
            "ensure_self_signed(pathlib.Path(tempfile.mkdtemp()))",
            False,
        ),
    ],
    ids=["masked", "stream", "certificate"],
)
def test_a_skin_or_certificate_imports_cryptography_when_used(use: str, use_switches: bool) -> None:
    code = _PLAIN_NODE + "\n" + use + "\n" + _AFTER
    # loaded: the link's keypairs from now on use it too, unless the native class is
    # ring's assembly, the faster one per packet
    switches = use_switches and not aead.NATIVE_IS_FASTER
    expected = "True cryptography" if switches else "True native"
    assert _python(code).splitlines() == ["native True False False", expected]


def native_chosen(monkeypatch: pytest.MonkeyPatch, *, faster: bool) -> object:
    """The native class chosen as at start, whatever other tests switched (restored
    after), with ring's rule (`faster`) or the portable build's; the class."""
    backend, native, invalid_tag = aead.choose()
    monkeypatch.setattr(aead, "BACKEND", backend)
    monkeypatch.setattr(aead, "ChaCha20Poly1305", native)
    monkeypatch.setattr(aead, "BAD_TAG", (invalid_tag,))
    monkeypatch.setattr(aead, "NATIVE_IS_FASTER", faster)
    return native


def test_the_python_data_plane_seals_with_cryptography_and_catches_both_forgeries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305 as Reference

    from tidewire.node.dataplane import PYTHON, choose
    from tidewire.protocol.errors import RemoteProtocolError
    from tidewire.protocol.link.crypto import aead_decrypt, aead_encrypt

    native_chosen(monkeypatch, faster=False)  # the portable build's rule
    key = bytes(range(32))
    made_before = aead.ChaCha20Poly1305(key)  # a keypair's, from before the switch
    assert choose(PYTHON).name == PYTHON
    assert (aead.BACKEND, aead.ChaCha20Poly1305) == (aead.CRYPTOGRAPHY, Reference)
    sealed = aead_encrypt(key, 1, b"inner", b"")
    assert made_before.decrypt(bytes(4) + (1).to_bytes(8, "little"), sealed, b"") == b"inner"
    forged = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(RemoteProtocolError):
        aead_decrypt(key, 1, forged, b"")
    with pytest.raises(aead.BAD_TAG):  # the native keypair's exception is still caught
        made_before.decrypt(bytes(4) + (1).to_bytes(8, "little"), forged, b"")


def test_the_python_data_plane_keeps_the_native_class_when_it_is_ring(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tidewire.node.dataplane import PYTHON, choose

    native = native_chosen(monkeypatch, faster=True)
    assert choose(PYTHON).name == PYTHON
    assert (aead.BACKEND, aead.ChaCha20Poly1305) == (aead.NATIVE, native)
