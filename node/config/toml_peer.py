"""The [[peer]] tables of a TOML config: keys, endpoints, mode and roles of one peer."""

from pathlib import Path
from typing import Any

from tidewire.protocol.link.profile import Mode

from . import PeerSpec
from .fields import endpoint, endpoints, integer, key, key_file, networks, peer_key
from .toml_table import boolean, str_list, toml_err, toml_line, unknown


def peer_table(
    path: Path, text: str, i: int, table: dict[str, Any], own: tuple[bytes, bytes]
) -> PeerSpec:
    err = toml_err(path, text, "peer", i)
    known = {
        "public_key",
        "preshared_key",
        "preshared_key_file",
        "endpoint",
        "endpoints",
        "allowed_ips",
        "persistent_keepalive",
        "mode",
        "provider",
        "neighbour",
    }
    unknown(table, known, err)
    if "public_key" not in table:
        err("public_key", "is required")
    peer = PeerSpec(
        public_key=peer_key(table["public_key"], err, "public_key", *own),
        line=toml_line(text, "peer", i, None) or 0,
    )
    if "preshared_key" in table and "preshared_key_file" in table:
        err("preshared_key", "set at most one of preshared_key and preshared_key_file")
    if "preshared_key" in table:
        peer.preshared_key = key(table["preshared_key"], err, "preshared_key")
    if "preshared_key_file" in table:
        peer.preshared_key = key_file(
            table["preshared_key_file"], err, "preshared_key_file", path.parent
        )
    if "endpoint" in table and "endpoints" in table:
        err("endpoints", "set endpoint or endpoints, not both (endpoint is one udp:// entry)")
    if "allowed_ips" in table:
        peer.allowed_ips = networks(
            str_list(table["allowed_ips"], err, "allowed_ips"), err, "allowed_ips"
        )
    if "persistent_keepalive" in table:
        peer.persistent_keepalive = integer(
            table["persistent_keepalive"], err, "persistent_keepalive", 0, 65535
        )
        peer.keepalive_set = True
    if "mode" in table:
        if table["mode"] not in ("native", "wireguard"):
            err("mode", 'must be "native" or "wireguard"')
        peer.mode = Mode(table["mode"])
    if "provider" in table:
        peer.provider = boolean(table["provider"], err, "provider")
    if "neighbour" in table:
        peer.neighbour = boolean(table["neighbour"], err, "neighbour")
        if peer.neighbour and peer.mode is not Mode.NATIVE:
            err("neighbour", 'needs mode = "native": routes travel on the control channel')
    if "endpoint" in table:
        peer.endpoint = endpoint(table["endpoint"], err, "endpoint")
    if "endpoints" in table:  # after mode: a wireguard-mode peer may only have udp://
        listed = str_list(table["endpoints"], err, "endpoints")
        found = endpoints(listed, err, "endpoints", peer.mode)
        peer.endpoint, peer.fallbacks = found[0], found[1:]
    for k in ("endpoint", "endpoints"):
        if k in table:
            peer.where["endpoint"] = (toml_line(text, "peer", i, k), f"[[peer]] #{i + 1} {k}")
    return peer
