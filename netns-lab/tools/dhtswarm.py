"""A Mainline DHT swarm for the lab: tidewire's DHT nodes and libtorrent sessions, each
on an address of its own, all bootstrapped from the first.

    dhtswarm.py swarm --first 203.0.113.10 --ours 27 --libtorrent 3 [--port 6881]
    dhtswarm.py lt-get --bind 203.0.113.60 --bootstrap 203.0.113.10:6881 KEY_HEX SALT

`swarm` prints "ready N" once every node has joined and runs until killed. `lt-get`
fetches a BEP 44 mutable item with a fresh libtorrent session (libtorrent checks the
signature itself) and prints it as JSON: key and signature (hex), salt, seq, and
libtorrent's own rendering of the value.
"""

import argparse
import ipaddress
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import libtorrent as lt
import trio

from tidewire.node.dht import DhtService


def lt_session(bind: str, port: int, *, alerts: Any = None) -> Any:
    """A libtorrent session with its DHT on and nothing reaching outside the lab:
    no internet bootstrap, UPnP, NAT-PMP or local discovery, and its one-node-per-IP
    restrictions lifted (the lab puts several nodes on one address)."""
    return lt.session(
        {
            "listen_interfaces": f"{bind}:{port}",
            "enable_dht": True,
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            "dht_bootstrap_nodes": "",
            "dht_restrict_routing_ips": False,
            "dht_restrict_search_ips": False,
            "dht_ignore_dark_internet": False,
            "dht_enforce_node_id": False,
            "alert_mask": lt.alert.category_t.dht_notification if alerts is None else alerts,
        }
    )


async def swarm(args: argparse.Namespace) -> None:
    first = ipaddress.ip_address(args.first)
    services = [DhtService.bind(str(first + i), args.port) for i in range(args.ours)]
    sessions = []
    async with trio.open_nursery() as nursery:
        for svc in services:
            await nursery.start(svc.run)
        for svc in services[1:]:
            with trio.move_on_after(10):
                await svc.bootstrap([services[0].address])
        for i in range(args.libtorrent):
            ses = lt_session(str(first + args.ours + i), args.port)
            ses.add_dht_node((str(first), args.port))
            sessions.append(ses)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if all(ses.status().dht_nodes >= 2 for ses in sessions):
                break
            await trio.sleep(0.2)
        print(f"ready {len(services) + len(sessions)}", flush=True)
        while True:
            for ses in sessions:
                ses.pop_alerts()
            await trio.sleep(1)


def lt_get(args: argparse.Namespace) -> int:
    host, _, port = args.bootstrap.rpartition(":")
    ses = lt_session(args.bind, 6881)
    ses.add_dht_node((host, int(port)))
    key, salt = bytes.fromhex(args.key), args.salt.encode()
    deadline = time.monotonic() + args.timeout
    asked = 0.0
    while time.monotonic() < deadline:
        if time.monotonic() - asked > 3:
            ses.dht_get_mutable_item(key, salt)
            asked = time.monotonic()
        for a in ses.pop_alerts():
            # libtorrent raises this alert only for an item whose signature it checked;
            # its Python binding cannot hand back a dictionary value, so the value is
            # checked by the caller against the signature printed here
            if isinstance(a, lt.dht_mutable_item_alert) and a.seq > 0:
                found = {
                    "key": bytes(a.key).hex(),
                    "salt": a.salt if isinstance(a.salt, str) else bytes(a.salt).decode(),
                    "seq": a.seq,
                    "signature": bytes(a.signature).hex(),
                    "message": a.message(),
                }
                print(json.dumps(found))
                return 0
        time.sleep(0.1)
    print("libtorrent found no item", file=sys.stderr)
    return 1


def main() -> int:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("swarm")
    s.add_argument("--first", required=True)
    s.add_argument("--ours", type=int, default=27)
    s.add_argument("--libtorrent", type=int, default=3)
    s.add_argument("--port", type=int, default=6881)
    g = sub.add_parser("lt-get")
    g.add_argument("--bind", required=True)
    g.add_argument("--bootstrap", required=True)
    g.add_argument("--timeout", type=float, default=30)
    g.add_argument("key")
    g.add_argument("salt")
    args = p.parse_args()
    if args.cmd == "swarm":
        trio.run(swarm, args)
        return 0
    return lt_get(args)


if __name__ == "__main__":
    sys.exit(main())
