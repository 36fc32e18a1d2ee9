"""The status report of a running node (what `wg show` tells, plus the counters of the
metrics registry), and the registration of those counters.

The JSON keys are stable (documented in the README): interface, public_key,
listen_port, listen (URLs: udp://, and masked://, tcp://, tls:// on those listeners), exit, drops,
peers[] with public_key, endpoint (a path: "host:port" or "skin://host:port"), allowed_ips,
latest_handshake (Unix seconds or null), rx_bytes, tx_bytes,
persistent_keepalive (seconds, 0 is off) and mode; a native peer also has
role (chooser or follower), active ({transport, endpoint}), candidates[] (transport,
endpoint, state, rtt_ms, loss, last_reply in seconds ago, learned, active) and switches.
"""

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from tidewire.node import accounting_metrics
from tidewire.node.core.paths.manager import describe
from tidewire.node.core.paths.pathset import PathSet
from tidewire.node.core.queues import implementation
from tidewire.node.core.roles import Role
from tidewire.node.metrics import Registry
from tidewire.protocol.keys import encode_key
from tidewire.protocol.link.peer import Peer

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
                **_paths(dp.paths.sets.get(key)),
            }
        )
    reg = daemon.metrics
    exit_refused = reg.collect("tidewire_exit_refused_total")
    return {
        "interface": daemon.cfg.name,
        "public_key": encode_key(dev.public_key),
        "listen_port": daemon.listen_port,
        "roles": roles(daemon),
        "dataplane": dp.dataplane,
        "dataplane_why": dp.dataplane_why,
        "queues": queues(daemon),
        "uptime": round(trio.current_time() - daemon.started_at, 1),
        "listen": daemon.listening(),
        "exit": {
            "enabled": daemon.exit_enabled,
            "outbound_interface": daemon.outbound_interface,
            "refused": exit_refused,
        },
        "drops": {
            **{f"link_{k}": v for k, v in reg.collect("tidewire_link_drops_total").items()},
            **reg.collect("tidewire_node_drops_total"),
        },
        "counters": {
            **reg.collect("tidewire_link_events_total"),
            **reg.collect("tidewire_node_events_total"),
        },
        "offloads": {
            "udp_gso": daemon.udp.batch.gso,
            "udp_gro": daemon.udp.gro,
            "udp_ecn": daemon.udp.batch.ecn_send and daemon.udp.ecn_receive,  # RFC 6040
            "tun_gro": dp.tun_gro,
            "tun_tso": dp.tun_tso,
        },
        "ticker": {
            "interval_ms": round(dp.ticker.interval * 1000),
            "ticks": int(reg.collect("tidewire_ticker_ticks_total")[""]),
        },
        "peers": peers,
        "share": daemon.sharing.status() if daemon.sharing is not None else None,
        "routes": daemon.routing.status() if daemon.routing is not None else [],
        "nat": daemon.nat.status() if daemon.nat is not None else None,
        "discovery": daemon.discovery.status(reg) if daemon.discovery is not None else None,
        "relay": daemon.relay.status() if daemon.relay is not None else None,
    }


def _paths(ps: PathSet | None) -> dict[str, Any]:
    """A native peer's path, candidates and switches (node/core/paths); none for others."""
    if ps is None:
        return {}
    return describe(ps, now=trio.current_time())


def queues(daemon: "Daemon") -> str | None:
    """The Share in use: "native", "python", "threads" (the native threads'), None."""
    sharing, dp = daemon.sharing, daemon.datapath
    if sharing is not None and sharing.threaded:
        return implementation(sharing.out_queue)
    return None if dp is None else implementation(dp.out_queue)


def _register_share(reg: Registry, daemon: "Daemon") -> None:
    sharing = daemon.sharing
    if sharing is None:
        return
    for direction, queue in (("download", sharing.out_queue), ("upload", sharing.in_queue)):
        if queue is None:
            continue
        for stat, kind, unit in (
            ("delay", "gauge", "seconds"),
            ("backlog_bytes", "gauge", ""),
            ("drops", "counter", "total"),
            ("marks", "counter", "total"),
        ):
            name = f"tidewire_share_{direction}_{stat}" + (f"_{unit}" if unit else "")

            def read(d: str = direction, s: str = stat) -> list[tuple[str, float]]:
                # looked up per read: the native threads take the queues over at start
                q = sharing.out_queue if d == "download" else sharing.in_queue
                return (
                    []
                    if q is None
                    else [(encode_key(k), st[s]) for k, st in q.client_stats().items()]
                )

            reg.labelled(
                name,
                f"Per client, {direction}: {stat.replace('_', ' ')} of its queue.",
                label="client",
                read=read,
                kind=kind,
            )
    if sharing.quota is not None:
        q = sharing.quota
        reg.value(
            "tidewire_share_quota_used_bytes",
            "Bytes of the quota used.",
            lambda: q.used,
            kind="gauge",
        )
    if sharing.admission is not None:
        a = sharing.admission
        reg.value(
            "tidewire_share_capacity_refused_total",
            "Handshakes refused: max_clients reached.",
            lambda: a.refused,
            kind="counter",
        )


def roles(daemon: "Daemon") -> list[str]:
    """What this node is to its peers: "exit" (a provider), "client" (uses a provider)."""
    out = ["exit"] if daemon.exit_enabled else []
    acct = daemon.accountant
    if acct is not None and Role.PROVIDER in acct.roles.values():
        out.append("client")
    return out


PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def resident_memory() -> float:
    """The process's resident set in bytes (the second field of /proc/self/statm)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0.0


def register(reg: Registry, daemon: "Daemon") -> None:
    """Register every counter of a running node (called once the data path exists)."""
    dp = daemon.datapath
    assert dp is not None
    dev = dp.device
    acct = daemon.accountant

    def node_drops() -> list[tuple[str, float]]:
        rows: list[tuple[str, float]] = [
            (k, v) for k, v in dp.drops.items() if not k.startswith("exit_")
        ]
        rows += list(dp.control.drops.items())
        if acct is not None:
            rows += list(acct.drops.items())
        if daemon.routing is not None:
            rows += list(daemon.routing.counters().items())
        if daemon.relay is not None:
            rows += list(daemon.relay.core.drops.items())
        return rows

    if daemon.nat is not None:
        nat = daemon.nat
        reg.labelled(
            "tidewire_nat_events_total",
            "NAT traversal: lookups, introductions, punches started, succeeded and failed, "
            "and every refusal by reason (node/core/nat).",
            label="event",
            read=lambda: list(nat.counters().items()),
        )

    reg.counters(
        "tidewire_link_drops_total",
        "Datagrams the link refused, by reason.",
        label="reason",
        source=dev.drops,
    )
    reg.counters(
        "tidewire_link_events_total",
        "Handshake and cookie events of the link.",
        label="event",
        source=dev.counters,
    )
    reg.labelled(
        "tidewire_node_drops_total",
        "Packets the node refused (data path, control plane, accounting), by reason.",
        label="reason",
        read=node_drops,
    )
    reg.counters(
        "tidewire_exit_refused_total",
        "Packets the exit policy refused, by reason.",
        label="reason",
        source=dp.drops,
        prefix="exit_",
    )
    reg.counters(
        "tidewire_node_events_total",
        "Data-path events (TUN super-packets and the like).",
        label="event",
        source=dp.counters,
    )
    reg.value(
        "tidewire_ticker_ticks_total",
        "Wake-ups the ticker made while the link was in use.",
        lambda: dp.ticker.ticks,
        kind="counter",
    )
    reg.value(
        "tidewire_timer_wakeups_total",
        "Wake-ups of the node's one timer task.",
        lambda: dp.timers.wakeups,
        kind="counter",
    )
    reg.value("tidewire_peers", "Configured peers.", lambda: len(dev.peers), kind="gauge")
    _register_share(reg, daemon)
    if daemon.relay is not None:
        daemon.relay.register(reg)

    def per_peer(read: Callable[[Peer], float]) -> Callable[[], list[tuple[str, float]]]:
        return lambda: [(encode_key(k), read(p)) for k, p in dev.peers.items()]

    reg.labelled(
        "tidewire_peer_handshakes_total",
        "Handshakes completed with each peer.",
        label="peer",
        read=per_peer(lambda p: p.handshakes),
    )
    reg.labelled(
        "tidewire_peer_path_switches_total",
        "Times each native peer's active path changed (node/core/paths).",
        label="peer",
        read=lambda: [(encode_key(k), ps.switches) for k, ps in dp.paths.sets.items()],
    )
    reg.counters(
        "tidewire_path_events_total",
        "Path probes sent, answered and replied to, raced initiations and switches, "
        "each by transport (probes_sent_udp, switches_to_masked, ...).",
        label="event",
        source=dp.paths.counters,
    )
    reg.value(
        "process_resident_memory_bytes",
        "Resident memory size in bytes.",
        resident_memory,
        kind="gauge",
    )
    if acct is not None:
        accounting_metrics.register(reg, acct)
    reg.labelled(
        "tidewire_peer_rx_bytes_total",
        "Bytes received from each peer on the wire.",
        label="peer",
        read=per_peer(lambda p: p.rx_bytes),
    )
    reg.labelled(
        "tidewire_peer_tx_bytes_total",
        "Bytes sent to each peer on the wire.",
        label="peer",
        read=per_peer(lambda p: p.tx_bytes),
    )
