"""The status report of a running node: what `wg show` tells, plus the node's own counters.

The JSON keys are stable (documented in the README): interface, public_key,
listen_port, exit, drops, peers[] with public_key, endpoint, allowed_ips,
latest_handshake (Unix seconds or null), rx_bytes, tx_bytes,
persistent_keepalive (seconds, 0 is off) and mode.
"""

import time
from typing import TYPE_CHECKING, Any

import trio

from tidewire.protocol.keys import encode_key

if TYPE_CHECKING:
    from tidewire.node.daemon import Daemon


def build_status(daemon: "Daemon") -> dict[str, Any]:
    dp = daemon.datapath
    assert dp is not None
    dev = dp.device
    # the wall clock now, not at start: a router without a real-time clock sets it later
    wall = time.time() - trio.current_time()
    allowed = daemon.peers.allowed if daemon.peers is not None else {}
    peers = []
    for key, peer in dev.peers.items():
        endpoint = None if peer.path is None else str(peer.path)
        latest = None if peer.last_handshake is None else round(peer.last_handshake + wall, 3)
        peers.append(
            {
                "public_key": encode_key(key),
                "endpoint": endpoint,
                "allowed_ips": [str(n) for n in allowed.get(key, [])],
                "latest_handshake": latest,
                "rx_bytes": peer.rx_bytes,
                "tx_bytes": peer.tx_bytes,
                "persistent_keepalive": int(peer.persistent_keepalive),
                "mode": peer.profile.mode.value,
            }
        )
    exit_refused = {k[5:]: v for k, v in dp.drops.items() if k.startswith("exit_")}
    return {
        "interface": daemon.cfg.name,
        "public_key": encode_key(dev.public_key),
        "listen_port": daemon.listen_port,
        "exit": {
            "enabled": daemon.exit_enabled,
            "outbound_interface": daemon.outbound_interface,
            "refused": exit_refused,
        },
        "drops": {
            **{f"link_{k}": v for k, v in dev.drops.items()},
            **{k: v for k, v in dp.drops.items() if not k.startswith("exit_")},
        },
        "counters": {**dev.counters, **dp.counters},
        "offloads": {
            "udp_gso": daemon.udp.batch.gso,
            "udp_gro": daemon.udp.gro,
            "tun_gro": dp.tun_gro,
            "tun_tso": dp.tun_tso,
        },
        "ticker": {"interval_ms": round(dp.ticker.interval * 1000), "ticks": dp.ticker.ticks},
        "peers": peers,
    }
