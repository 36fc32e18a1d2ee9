"""Control-socket requests that change the node, checked field by field before anything
changes, and endpoint resolution (an endpoint is a path: "host:port" or
"skin://host:port", skin masked, tcp or tls, or "relay://KEY")."""

import socket
from ipaddress import ip_network
from typing import Any

import trio

from tidewire.node import control
from tidewire.node.config import PeerSpec, format_path, parse_path
from tidewire.node.core import relay
from tidewire.node.errors import NodeError
from tidewire.protocol.errors import LocalProtocolError
from tidewire.protocol.keys import decode_key
from tidewire.protocol.link.profile import Mode
from tidewire.protocol.types import RELAY, UDP, Path


def request_key(req: dict[str, Any], field: str) -> bytes:
    value = req.get(field)
    if not isinstance(value, str):
        raise control.RequestError(f"{field}: a base64 key is required")
    try:
        return decode_key(value, field=field)
    except LocalProtocolError as exc:
        raise control.RequestError(str(exc)) from None


def peer_spec_from_request(req: dict[str, Any]) -> PeerSpec:
    spec = PeerSpec(public_key=request_key(req, "public_key"))
    if req.get("preshared_key") is not None:
        spec.preshared_key = request_key(req, "preshared_key")
    mode = req.get("mode", "native")
    if mode not in ("native", "wireguard"):
        raise control.RequestError('mode: must be "native" or "wireguard"')
    spec.mode = Mode(mode)
    endpoint = req.get("endpoint")
    if endpoint is not None:
        if not isinstance(endpoint, str):
            raise control.RequestError("endpoint: must be HOST:PORT or SKIN://HOST:PORT")
        try:
            transport, host, port = parse_path(endpoint)
        except ValueError as exc:
            raise control.RequestError(f"endpoint: {exc}") from None
        if transport != UDP and spec.mode is Mode.WIREGUARD:
            raise control.RequestError(
                "endpoint: a wireguard-mode peer can only use udp:// (stock WireGuard knows"
                " no skins)"
            )
        spec.endpoint = format_path(transport, host, port)
    ips = req.get("allowed_ips", [])
    if not isinstance(ips, list) or not all(isinstance(v, str) for v in ips):
        raise control.RequestError("allowed_ips: must be a list of prefixes")
    for v in ips:
        try:
            spec.allowed_ips.append(ip_network(v, strict=False))
        except ValueError:
            raise control.RequestError(f"allowed_ips: {v!r} is not an IP prefix") from None
    keepalive = req.get("persistent_keepalive", 0)
    if not isinstance(keepalive, int) or isinstance(keepalive, bool) or not 0 <= keepalive <= 65535:
        raise control.RequestError("persistent_keepalive: seconds from 0 to 65535")
    spec.persistent_keepalive = keepalive
    return spec


async def resolve(endpoint: str) -> Path:
    """The path of a peer's endpoint text ("host:port" or "scheme://host:port"), its host
    resolved (the first address DNS gives)."""
    try:
        transport, host, port = parse_path(endpoint)
        if transport == RELAY:  # relay://KEY: peers.py adds the far end's key
            return Path(RELAY, (host, port))
        infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except ValueError as exc:
        raise NodeError(f"endpoint {endpoint}: {exc}") from None
    except socket.gaierror as exc:
        raise NodeError(f"endpoint {endpoint}: cannot resolve {host} ({exc.strerror})") from None
    except UnicodeError:  # the idna codec: a label longer than 63 characters
        raise NodeError(f"endpoint {endpoint}: {host!r} is not a valid host name") from None
    _family, _, _, _, sockaddr = infos[0]
    return Path(transport, (str(sockaddr[0]), int(sockaddr[1])))


def relayed(path: Path, end: bytes) -> Path:
    """A relay:// candidate of the peer `end`: its address names the relay and that peer
    (node/core/relay.py); any other path as it is."""
    if path.transport != RELAY:
        return path
    via = relay.decode(path.address[0])
    assert via is not None  # parse_path checked it
    return Path(RELAY, relay.address(via, end))
