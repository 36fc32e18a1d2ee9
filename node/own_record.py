"""A provider's or relay's own node record as it stands, from the running node: its listeners
(the wildcard address replaced by the address the DHT sees it at, or the one its
default route leaves from), its price, its shared rate and how full it is, and
tidewire's version read without importlib.metadata. Signed and published by
discovery.py; the record's format is protocol/control/records.py."""

import functools
import os
import socket
import sys
from typing import TYPE_CHECKING

import trio

from tidewire.protocol.control.records import NodeRecord

if TYPE_CHECKING:
    from tidewire.node.daemon import Daemon


def route_source() -> str | None:
    """The IPv4 address our default route leaves from (a UDP connect sends nothing),
    or None with no route."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: only the route lookup matters
        except OSError:
            return None
        addr: str = s.getsockname()[0]
        return addr


def provider_record(daemon: "Daemon", external_ip: str | None) -> NodeRecord:
    """A provider's or a relay's record as it stands: its listeners (the wildcard
    address replaced by the address the DHT sees it at), its roles, its shared rate and
    how full it is, and a paid relay's price (`rprice`)."""
    from tidewire.node.core.capacity import live
    from tidewire.node.core.overlay import overlay_text

    cfg = daemon.cfg
    dp = daemon.datapath
    assert dp is not None
    public = dp.device.public_key
    host = external_ip or "0.0.0.0"
    ends = tuple(url.replace("0.0.0.0", host) for url in daemon.listening())
    share = cfg.share
    clients = share.max_clients or 0
    now = trio.current_time()
    active = sum(1 for p in dp.device.peers.values() if live(p, now=now))
    return NodeRecord(
        public_key=public,
        overlay=overlay_text(public),
        endpoints=ends,
        roles=roles(daemon),
        price=cfg.exit.price,
        relay_price=cfg.relay.price if cfg.relay.enabled and cfg.relay.require_receipts else None,
        capacity=(share.download or 0) * 8,
        clients=clients,
        load=min(100, active * 100 // clients) if clients else 0,
        region=cfg.discovery.region,
        version=f"tidewire {installed_version()}",
        expiry=0,
    )


def roles(daemon: "Daemon") -> tuple[str, ...]:
    """What the node offers: an exit ("provider") and forwarding ("relay")."""
    return (("provider",) if daemon.exit_enabled else ()) + (
        ("relay",) if daemon.cfg.relay.enabled else ()
    )


@functools.cache
def installed_version() -> str:
    """tidewire's installed version, from the `Version:` line of its dist-info's METADATA.
    importlib.metadata would cost a provider 1.6 MiB of memory for this one string
    (issue 5: `tidewire --version` defers it for the same reason)."""
    for folder in sys.path:
        try:
            names = os.listdir(folder or ".")
        except OSError:
            continue
        for name in names:
            if not (name.startswith("tidewire-") and name.endswith(".dist-info")):
                continue
            try:
                with open(os.path.join(folder or ".", name, "METADATA"), encoding="utf-8") as f:
                    for line in f:
                        if line.startswith("Version:"):
                            return line.split(":", 1)[1].strip()
                        if not line.strip():  # the headers end: no version
                            break
            except OSError:
                continue
    return "dev"
