"""The winning path per peer and network, kept in the state directory (`paths.json`), so
that a restart on the same network starts with the path that worked there last.

A network is named by how the kernel reaches the peer's first candidate: the local
source address and the gateway (`ip -json route get ADDR mark MARK`, with our sockets'
mark, so the answer is the route our datagrams take and not the tunnel's). The file is
small JSON: {network: {peer key (base64): path URL}}, at most MAX_NETWORKS networks,
the oldest forgotten first; written atomically in a worker thread, never on the loop.
"""

import json
import logging
from pathlib import Path

import trio

from tidewire.node import netconf
from tidewire.node.state import atomic_write
from tidewire.protocol.keys import encode_key
from tidewire.protocol.types import Path as LinkPath

log = logging.getLogger("tidewire.node")

MAX_NETWORKS = 32
FILE = "paths.json"


def network_of(address: str, *, mark: int) -> str | None:
    """ "SOURCE via GATEWAY" (or "SOURCE on DEV" without one) for the route to `address`;
    None if the kernel has none. Blocking: run it in a worker thread."""
    try:
        routes = netconf.route_get(address, mark=mark)
    except Exception:  # no route, or no `ip`: then there is nothing to remember by
        return None
    if not routes:
        return None
    r = routes[0]
    src = r.get("prefsrc") or "?"
    if r.get("gateway"):
        return f"{src} via {r['gateway']}"
    return f"{src} on {r.get('dev', '?')}"


class PathMemory:
    def __init__(self, state_dir: Path) -> None:
        self.file = state_dir / FILE
        self.known: dict[str, dict[str, str]] = {}
        self._lock = trio.Lock()
        try:
            data = json.loads(self.file.read_text())
        except (OSError, ValueError):
            return
        if isinstance(data, dict):
            self.known = {
                str(net): {str(k): str(v) for k, v in peers.items()}
                for net, peers in data.items()
                if isinstance(peers, dict)
            }

    def winner(self, network: str | None, peer_key: bytes) -> str | None:
        if network is None:
            return None
        return self.known.get(network, {}).get(encode_key(peer_key))

    def remember(self, network: str | None, peer_key: bytes, path: LinkPath) -> bool:
        """Note the winner; True if that changed what the file holds."""
        if network is None:
            return False
        peers = self.known.pop(network, {})
        self.known[network] = peers  # the most recent network last
        while len(self.known) > MAX_NETWORKS:
            del self.known[next(iter(self.known))]
        key, text = encode_key(peer_key), path_url(path)
        if peers.get(key) == text:
            return False
        peers[key] = text
        return True

    async def save(self) -> None:
        async with self._lock:
            data = json.dumps(self.known, indent=1, sort_keys=True).encode()
            try:
                await trio.to_thread.run_sync(atomic_write, self.file, data)
            except OSError as exc:
                log.warning("cannot write %s: %s", self.file, exc.strerror)


def path_url(path: LinkPath) -> str:
    """The path as an endpoints entry names it (udp:// spelt out)."""
    text = str(path)
    return text if "://" in text else f"udp://{text}"
