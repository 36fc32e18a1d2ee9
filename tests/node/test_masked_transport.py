"""The masked transport on loopback (node/transports/masked.py): what leaves its sockets
carries no WireGuard type word or size, a listener unwraps with its own key and a dialler
with the listener's, decoys go first and are dropped, and nothing that does not unwrap
reaches the data path."""

import socket
from collections import Counter

import trio

from tidewire.node.transports.masked import MaskedTransport
from tidewire.protocol.types import MASKED, Endpoint, Path

LISTENER_KEY = bytes(range(32))
CLIENT_KEY = bytes(range(1, 33))
INITIATION = b"\x01\0\0\0" + bytes(144)
RESPONSE = b"\x02\0\0\0" + bytes(88)
KEEPALIVE = b"\x04\0\0\0" + bytes(28)


class Recorder:
    def __init__(self) -> None:
        self.batches: list[int] = []  # the sizes of the runs handed over together
        self.got: list[tuple[bytes, Path]] = []

    def receive(self, data: bytes, path: Path, *, now: float, ecn: int = 0) -> bool:
        self.got.append((data, path))
        return False

    def receive_batch(self, datagrams: list[bytes], path: Path, *, now: float, ecn: int) -> bool:
        self.batches.append(len(datagrams))
        return any([self.receive(d, path, now=now, ecn=ecn) for d in datagrams])

    def shed(self, *, now: float) -> None:
        pass

    def after_batch(self, *, data: bool) -> None:
        pass


def v4(transport: MaskedTransport) -> Endpoint:
    transport.sockets.pop(socket.AF_INET6, None)  # the test speaks IPv4 only
    return ("127.0.0.1", transport.port)


async def serve_briefly(transport: MaskedTransport) -> Recorder:
    rec = Recorder()
    with trio.move_on_after(0.2):
        await transport.serve(rec)
    return rec


async def test_a_dialler_and_a_listener_exchange_masked_datagrams() -> None:
    server_drops: Counter[str] = Counter()
    client_drops: Counter[str] = Counter()
    server = MaskedTransport(server_drops, own_public=LISTENER_KEY)
    server.listen(0, mark=0)
    client = MaskedTransport(client_drops, own_public=CLIENT_KEY)
    client.bind(0, mark=0)
    server_addr, client_addr = v4(server), v4(client)
    client.register(server_addr, LISTENER_KEY)
    client.send_now(INITIATION, server_addr)  # two decoys first, then the initiation
    client.send_now(INITIATION, server_addr)  # decoys only before the first
    rec = await serve_briefly(server)
    assert rec.got == [(INITIATION, Path(MASKED, client_addr))] * 2
    assert server_drops["masked_decoys"] == 2 and server_drops["masked_unwrap_failed"] == 0
    server.send_now(RESPONSE, client_addr)  # unregistered: a client of ours, our own key
    server.add(KEEPALIVE, client_addr)
    server.flush()
    rec = await serve_briefly(client)
    back = Path(MASKED, server_addr)
    assert rec.got == [(RESPONSE, back), (KEEPALIVE, back)]
    assert client_drops["masked_unwrap_failed"] == 0
    server.close()
    client.close()


async def test_the_wire_shows_no_wireguard_type_word_or_size() -> None:
    drops: Counter[str] = Counter()
    client = MaskedTransport(drops, own_public=CLIENT_KEY, decoys=0)
    client.bind(0, mark=0)
    v4(client)
    sniffer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a plain socket: the wire
    sniffer.bind(("127.0.0.1", 0))
    sniffer.settimeout(1)
    dst = sniffer.getsockname()
    client.register(dst, LISTENER_KEY)
    seen = []
    for _ in range(50):
        for message in (INITIATION, RESPONSE, KEEPALIVE):
            client.send_now(message, dst)
            seen.append((message, sniffer.recv(65536)))
    for message, wire in seen:
        assert wire[:4] != message[:4] and wire != message
    sizes = {len(w) for m, w in seen if m is INITIATION}
    assert 148 not in sizes and len(sizes) > 10  # padded to drawn sizes
    client.close()
    sniffer.close()


async def test_what_does_not_unwrap_is_counted_and_never_delivered() -> None:
    drops: Counter[str] = Counter()
    server = MaskedTransport(drops, own_public=LISTENER_KEY)
    server.listen(0, mark=0)
    dialler = MaskedTransport(Counter(), own_public=CLIENT_KEY)  # not a listener
    dialler.bind(0, mark=0)
    server_addr, dialler_addr = v4(server), v4(dialler)
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    for size in (1, 31, 32, 148, 200, 1400):
        probe.sendto(bytes(size), server_addr)
        probe.sendto(bytes(size), dialler_addr)  # nobody it registered: no key at all
    probe.sendto(INITIATION, server_addr)  # plain WireGuard to the masked port
    wrong = MaskedTransport(Counter(), own_public=CLIENT_KEY, decoys=0)  # the wrong key
    wrong.bind(0, mark=0)
    v4(wrong)
    wrong.register(server_addr, CLIENT_KEY)
    wrong.send_now(INITIATION, server_addr)
    rec = await serve_briefly(server)
    assert rec.got == []
    assert drops["masked_unwrap_failed"] + drops["masked_decoys"] == 8
    rec = await serve_briefly(dialler)
    assert rec.got == [] and dialler.drops["masked_unwrap_failed"] == 6
    dialler.send_now(RESPONSE, probe.getsockname())  # not a listener: no key for it
    dialler.add(KEEPALIVE, probe.getsockname())
    dialler.flush()
    assert dialler.drops["masked_no_key"] == 2
    probe.settimeout(0.2)
    try:
        reply = probe.recv(65536)
    except TimeoutError:
        reply = b""
    assert reply == b""  # no answer to anything, and nothing sent without a key
    for t in (server, dialler, wrong):
        t.close()
    probe.close()


def test_each_change_of_the_keys_calls_the_native_installer_at_once() -> None:
    """The native receive thread drops what no key it holds opens, so a listener's key
    must be there before its first answer: `changed` runs at each change, not a poll
    later, and not when nothing changed."""
    transport = MaskedTransport(Counter(), own_public=CLIENT_KEY)
    calls: list[int] = []
    transport.changed = lambda: calls.append(transport.generation)
    address: Endpoint = ("192.0.2.1", 8443)
    transport.register(address, LISTENER_KEY)
    transport.register(address, LISTENER_KEY)  # the same key again: no change
    transport.forget(address)
    transport.forget(address)
    assert calls == [1, 2]
