"""What a reload changes: the difference between the running node and its re-read config.

`tidewire reload` and SIGHUP re-read the file the node started with, as `wg syncconf`
does; this module decides, without touching anything, what that means. Peers are
compared with the running peers (those of the file at start and those added at run
time since, which a reload removes unless the file has them, as syncconf does; not
the dynamic ones, which the node made itself, `PeerSpec.dynamic`) on the fields a
peer can change in place: allowed IPs, endpoint(s), keepalive, preshared
key and provider; a peer whose `mode` changed must be removed and added again (its
identifier strings differ, so its session cannot survive). [share], the exit's
allow and deny rules and a client's DNS servers can change in place. The rest is fixed
at start (the key, the listeners, the interface and its addresses, ...): a change
there is reported as needing a restart and the running value stays.

A file that names a dynamic peer's key is refused whole, before anything changes: the
exit choice or open admission owns that peer and would later remove it or move its
routes under the configuration; a restart makes it configured from the start.

`applied(running, new)` is the config the node runs after a reload: the new one in
everything that was applied, the running one in everything that needs a restart, so
the next reload still reports those.
"""

from dataclasses import dataclass, field, fields, replace
from ipaddress import IPv4Network, IPv6Network

from tidewire.node.config import ConfigError, NodeConfig, PeerSpec
from tidewire.node.config.share import ShareConfig
from tidewire.protocol.keys import short

Network = IPv4Network | IPv6Network

# a peer's fields that a reload compares, in the order a reply lists them
PEER_FIELDS = (
    "allowed_ips",
    "endpoint",
    "persistent_keepalive",
    "preshared_key",
    "provider",
    "mode",
)

# who made a dynamic peer (`PeerSpec.origin`), as a refusal names it
MAKERS = {"exit": "the exit choice", "open": "open admission"}

# what only a restart changes: (name in the reply, how to read it from a NodeConfig)
RESTART_ONLY = (
    ("[interface] name", lambda c: c.name),
    ("[interface] private_key", lambda c: c.private_key),
    ("[interface] listen", lambda c: (c.listen_port, c.masked_port, c.tcp_port, c.tls_port)),
    ("[tls]", lambda c: c.tls),
    ("[interface] address", lambda c: sorted(map(str, c.addresses))),
    ("[interface] mtu", lambda c: c.mtu),
    ("[interface] state_dir", lambda c: c.state_dir),
    ("[interface] control_socket", lambda c: c.control_socket),
    ("[exit] enabled", lambda c: c.exit.enabled),
    ("[exit] outbound_interface", lambda c: c.exit.outbound_interface),
    ("[exit] open, price", lambda c: (c.exit.open, c.exit.price)),
    ("[routing]", lambda c: c.routing),
    ("[accounting]", lambda c: (c.accounting, c.epoch_seconds)),
    ("[metrics] listen", lambda c: c.metrics_listen),
    ("[dns] resolver", lambda c: (c.dns.resolver, c.dns.upstream)),
    ("[discovery]", lambda c: c.discovery),
    ("[[peer]] neighbour", lambda c: sorted(p.public_key for p in c.peers if p.neighbour)),
    ("[relay] enabled, require_receipts", lambda c: (c.relay.enabled, c.relay.require_receipts)),
    ("[interface] table, fwmark, hooks, kill switch", lambda c: c.service),
)


# [relay] keys a reload applies to the running relay (the rest of the table restarts)
RELAY_LIVE = ("pair_rate", "pair_cap", "max_pairs", "price")


@dataclass(frozen=True)
class PeerChange:
    spec: PeerSpec  # the peer as the file has it now
    fields: tuple[str, ...]  # of PEER_FIELDS, those that differ

    @property
    def readd(self) -> bool:
        """A change the session cannot survive: the peer is removed and added again."""
        return "mode" in self.fields


@dataclass
class Diff:
    added: list[PeerSpec] = field(default_factory=list)
    removed: list[bytes] = field(default_factory=list)
    changed: list[PeerChange] = field(default_factory=list)
    share: tuple[str, ...] = ()  # [share] keys that differ
    exit_policy: bool = False  # [exit] allow or deny differ
    dns: bool = False  # [dns] servers or search differ
    relay: tuple[str, ...] = ()  # [relay] limits that differ (RELAY_LIVE)
    restart: list[str] = field(default_factory=list)  # of RESTART_ONLY, those that differ

    def __bool__(self) -> bool:
        """Anything to apply (a change needing a restart applies nothing)."""
        return bool(
            self.added
            or self.removed
            or self.changed
            or self.share
            or self.exit_policy
            or self.dns
            or self.relay
        )


def peer_fields(spec: PeerSpec) -> dict[str, object]:
    """The comparable values of a peer (the line it was read from is not one)."""
    return {
        "allowed_ips": sorted(map(str, spec.allowed_ips)),
        "endpoint": (spec.endpoint, tuple(spec.fallbacks)),
        "persistent_keepalive": spec.persistent_keepalive,
        "preshared_key": spec.preshared_key,
        "provider": spec.provider,
        "mode": spec.mode,
    }


def diff(
    running: NodeConfig, new: NodeConfig, *, peers: dict[bytes, PeerSpec], exit_flag: bool = False
) -> Diff:
    """What to change to go from the running node to `new`.

    `peers` are the running peers by key (run-time additions included; dynamic ones,
    an exit choice's providers and an open provider's clients, are not configuration
    and are left alone); `exit_flag` is true when the node was started with --exit,
    which keeps the exit on whatever the file says."""
    out = Diff()
    refuse_dynamic(new, peers)
    wanted = {spec.public_key: spec for spec in new.peers}
    peers = {key: spec for key, spec in peers.items() if not spec.dynamic}
    out.removed = [key for key in peers if key not in wanted]
    for key, spec in wanted.items():
        old = peers.get(key)
        if old is None:
            out.added.append(spec)
            continue
        before, after = peer_fields(old), peer_fields(spec)
        changed = tuple(f for f in PEER_FIELDS if before[f] != after[f])
        if changed:
            out.changed.append(PeerChange(spec, changed))
    out.share = tuple(
        f.name
        for f in fields(ShareConfig)
        if getattr(running.share, f.name) != getattr(new.share, f.name)
    )
    out.exit_policy = (running.exit.allow, running.exit.deny) != (new.exit.allow, new.exit.deny)
    out.dns = (running.dns.servers, running.dns.search) != (new.dns.servers, new.dns.search)
    out.relay = tuple(k for k in RELAY_LIVE if getattr(running.relay, k) != getattr(new.relay, k))
    for name, read in RESTART_ONLY:
        if name == "[exit] enabled" and exit_flag:
            continue
        if read(running) != read(new):
            out.restart.append(name)
    return out


def refuse_dynamic(new: NodeConfig, peers: dict[bytes, PeerSpec]) -> None:
    """Refuse a file that configures a key the node runs as a dynamic peer."""
    for i, spec in enumerate(new.peers):
        running = peers.get(spec.public_key)
        if running is not None and running.dynamic:
            raise ConfigError(
                new.path,
                spec.line or None,
                f"peer #{i + 1} public_key",
                f"peer {short(spec.public_key)} is a dynamic peer that"
                f" {MAKERS.get(running.origin, running.origin)} made, which a reload cannot"
                " make configuration: remove it from the file, or restart the node to"
                " configure it",
            )


def check_allowed_ips(cfg: NodeConfig) -> None:
    """Refuse a prefix two peers of the file claim (start-up would refuse it too)."""
    owner: dict[Network, PeerSpec] = {}
    for i, spec in enumerate(cfg.peers):
        for net in spec.allowed_ips:
            first = owner.setdefault(net, spec)
            if first is not spec:
                raise ConfigError(
                    cfg.path,
                    spec.line or None,
                    f"peer #{i + 1} allowed IPs",
                    f"{net} belongs to peer {short(first.public_key)} too",
                )


def applied(running: NodeConfig, new: NodeConfig, change: Diff | None = None) -> NodeConfig:
    """The config the node runs once `new` is applied: restart-only settings stay, and
    so does a [share] the change left for a restart."""
    return replace(
        running,
        peers=new.peers,
        share=running.share if change is not None and "[share]" in change.restart else new.share,
        exit=replace(running.exit, allow=new.exit.allow, deny=new.exit.deny),
        dns=replace(running.dns, servers=new.dns.servers, search=new.dns.search),
        relay=replace(running.relay, **{k: getattr(new.relay, k) for k in RELAY_LIVE}),
        client=new.client,
        warnings=new.warnings,
    )
