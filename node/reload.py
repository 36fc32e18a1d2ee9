"""Reloading a running node's config (SIGHUP, `tidewire reload IFACE`), as `wg syncconf`.

1. Re-read the file the node started with, through the same reader and the same
   system checks as `tidewire up` (in a worker thread: they resolve host names), and
   the check start-up makes later (no prefix claimed by two peers).
2. On any error nothing changes: the sentence (file, line, field) is logged and
   returned to the caller.
3. The difference with the running node (node/core/reload.py) is applied through the
   existing verbs: the exit rules first (nft swaps its table in one transaction, so
   a refusal there still changes nothing), then the peers (those whose mode changed
   are removed and added again, then the new ones are added, the changed ones
   updated in place, the gone ones removed last, so a prefix that moves between
   peers is taken before it is let go), then [share], then DNS. Unchanged peers are
   not touched: their sessions, counters and roamed paths stay. Should `ip` fail
   among the peers, the reload stops there and says so; the next one diffs against
   what then runs.
4. The reply says what changed, and what needs a restart (and was left as it runs).

Reloads run one at a time.
"""

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import trio

from tidewire.node import dns, firewall
from tidewire.node.config import ConfigError, NodeConfig, load
from tidewire.node.config.system import check_system, interface_exists, resolve
from tidewire.node.core.exit_policy import ExitPolicy
from tidewire.node.core.reload import Diff, applied, check_allowed_ips, diff
from tidewire.node.errors import NodeError
from tidewire.protocol.errors import LocalProtocolError
from tidewire.protocol.keys import encode_key

if TYPE_CHECKING:
    from tidewire.node.daemon import Daemon

log = logging.getLogger("tidewire.node")


class ReloadError(NodeError):
    """A reload refused (nothing changed) or stopped halfway; the message says which."""


class Reloader:
    def __init__(self, daemon: "Daemon") -> None:
        self.daemon = daemon
        self.lock = trio.Lock()

    async def reload(self) -> dict[str, Any]:
        """Re-read, check and apply the config; the reply's `reload` object."""
        d = self.daemon
        async with self.lock:
            d.notifier.reloading()
            try:
                return await self._reload(d)
            finally:
                d.notifier.ready(f"{d.cfg.name} up")

    async def _reload(self, d: "Daemon") -> dict[str, Any]:
        assert d.peers is not None
        try:
            new = await trio.to_thread.run_sync(self.read)
            change = diff(d.cfg, new, peers=d.peers.specs, exit_flag=d.exit_flag)
            change = self.native_guard(change, new)
            await self.exit_rules(change, new)  # one nft transaction: all or nothing
        except (ConfigError, NodeError) as exc:
            log.error("%s: reload refused, nothing changed: %s", d.cfg.name, exc)
            raise ReloadError(f"{exc}; nothing changed") from None
        try:
            await self.apply(change, new)
        except (NodeError, LocalProtocolError, OSError) as exc:
            log.error("%s: reload stopped halfway: %s", d.cfg.name, exc)
            raise ReloadError(
                f"the reload stopped halfway: {exc}; run `tidewire reload` again once that is fixed"
            ) from None
        d.cfg = applied(d.cfg, new, change)
        reply = describe(change, new)
        log.info("%s: reloaded %s: %s", d.cfg.name, new.path, summary(reply))
        return reply

    def native_guard(self, change: Diff, new: NodeConfig) -> Diff:
        """The native threads (node/dataplane_loop.py) hold [share]'s queues themselves
        (node/sharing.py's `to_threads`) and its quota's gate, so rates, caps, the quota
        and shaping on or off apply in place. Only threads of a module without queues or
        gates leave a [share] that needs them for a restart, which runs the Python
        readers instead, rather than applied to queues the threads bypass."""
        d = self.daemon
        dp, sharing = d.datapath, d.sharing
        if not change.share or dp is None or not dp.native_threads or sharing is None:
            return change
        counts = new.share.quota is None or hasattr(dp.native_module.Outbound, "set_quota")
        if counts and (sharing.threaded or not sharing.shapes(new.share)):
            return change
        log.warning("%s: [share] needs a restart while the native threads run", d.cfg.name)
        return replace(change, share=(), restart=[*change.restart, "[share]"])

    def read(self) -> NodeConfig:
        """The config file, loaded and checked as `tidewire up` checks it (blocking)."""
        d = self.daemon
        new = load(d.cfg.path)
        check_system(
            new,
            exit_enabled=d.exit_enabled,
            interface_exists=interface_exists,
            resolve=resolve,
        )
        check_allowed_ips(new)
        return new

    async def exit_rules(self, change: Diff, new: NodeConfig) -> None:
        d = self.daemon
        dp = d.datapath
        assert dp is not None
        if change.exit_policy and dp.policy is not None and d.outbound_interface is not None:
            out = d.outbound_interface
            resolver = [str(a) for a in dp.policy.resolver]
            rules = ExitPolicy(allow=new.exit.allow, deny=new.exit.deny, resolver=resolver)
            await trio.to_thread.run_sync(
                lambda: firewall.install(d.cfg.name, out, rules, swap=True)
            )
            dp.policy.set_rules(allow=new.exit.allow, deny=new.exit.deny)
            log.info("%s: exit rules replaced", d.cfg.name)

    async def apply(self, change: Diff, new: NodeConfig) -> None:
        """The rest of the difference: peers, [share], DNS."""
        d = self.daemon
        dp, peers = d.datapath, d.peers
        assert dp is not None and peers is not None and d.sharing is not None
        readd = [c.spec for c in change.changed if c.readd]
        for spec in readd:
            await peers.remove(spec.public_key)
        for spec in [*readd, *change.added]:
            peer = await peers.add(spec, move=True, last_timestamp=self._timestamp(spec))
            if peer.path is not None and spec.persistent_keepalive:
                dp.device.send_keepalive(peer, now=trio.current_time())
        for c in change.changed:
            if not c.readd:
                await peers.update(c.spec)
        for key in change.removed:
            await peers.remove(key)
        dp.flush()
        if change.share:
            d.sharing.reconfigure(new.share)
            log.info("%s: [share] now %s", d.cfg.name, ", ".join(change.share))
        if change.dns:
            await self._dns(new)
        if change.relay and d.relay is not None:
            d.relay.reconfigure(applied(d.cfg, new).relay, now=trio.current_time())
            log.info("%s: [relay] now %s", d.cfg.name, ", ".join(change.relay))

    def _timestamp(self, spec: Any) -> bytes | None:
        w = self.daemon.timestamps
        if w is None:
            return None
        key = spec.public_key
        return w.pending.get(key) or w.reserved.get(key) or w.store.get(key)

    async def _dns(self, new: NodeConfig) -> None:
        d = self.daemon
        state = d.cfg.state_dir / d.cfg.name
        if new.dns.servers:
            settings = dns.DnsSettings(new.dns.servers, new.dns.search)
            d.dns_record = await trio.to_thread.run_sync(
                lambda: dns.apply(settings, iface=d.cfg.name, state_dir=state)
            )
        elif d.dns_record is not None:
            record, d.dns_record = d.dns_record, None
            await trio.to_thread.run_sync(dns.restore, record)


def describe(change: Diff, new: NodeConfig) -> dict[str, Any]:
    """The reply: stable JSON (documented in docs/reload.md)."""
    return {
        "config": str(new.path),
        "changed": bool(change),
        "peers": {
            "added": [encode_key(s.public_key) for s in change.added],
            "removed": [encode_key(k) for k in change.removed],
            "changed": {encode_key(c.spec.public_key): list(c.fields) for c in change.changed},
        },
        "share": list(change.share),
        "exit_policy": change.exit_policy,
        "dns": change.dns,
        "relay": list(change.relay),
        "restart_needed": list(change.restart),
    }


def summary(reply: dict[str, Any]) -> str:
    """One line for the log."""
    p = reply["peers"]
    parts = [
        f"{len(p['added'])} peers added",
        f"{len(p['removed'])} removed",
        f"{len(p['changed'])} changed",
    ]
    if reply["share"]:
        parts.append("[share] " + ", ".join(reply["share"]))
    if reply["exit_policy"]:
        parts.append("exit rules")
    if reply["dns"]:
        parts.append("DNS")
    if reply["relay"]:
        parts.append("[relay] " + ", ".join(reply["relay"]))
    if reply["restart_needed"]:
        parts.append("needs a restart: " + ", ".join(reply["restart_needed"]))
    return "; ".join(parts)
