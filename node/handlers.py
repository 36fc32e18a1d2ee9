"""What the daemon answers on its control socket: one function per command.

Requests are checked field by field (requests.py) before anything changes; a refusal
is a `control.RequestError` whose message is the reply's one sentence.
"""

import logging
import time
from typing import TYPE_CHECKING, Any

import trio

from tidewire.node import control
from tidewire.node.errors import NodeError
from tidewire.node.peers import PeerError
from tidewire.node.reload import ReloadError
from tidewire.node.requests import peer_spec_from_request, request_key
from tidewire.node.status import build_status
from tidewire.node.usage import epoch_report, usage
from tidewire.protocol.accounting.report import epoch_at
from tidewire.protocol.errors import LocalProtocolError

if TYPE_CHECKING:
    from tidewire.node.daemon import Daemon

log = logging.getLogger("tidewire.node")

MAX_EPOCH = 1 << 40  # far beyond any real epoch number; bounds what a request can ask for


class Handlers:
    def __init__(self, daemon: "Daemon") -> None:
        self.daemon = daemon
        self.commands = {
            "status": self.status,
            "down": self.down,
            "peer_add": self.peer_add,
            "peer_remove": self.peer_remove,
            "usage": self.usage,
            "report": self.report,
            "metrics": self.metrics,
            "discover": self.discover,
            "reload": self.reload,
            "routes": self.routes,
            "exits": self.exits,
        }

    async def __call__(self, req: dict[str, Any]) -> dict[str, Any]:
        cmd = req["cmd"]
        handler = self.commands.get(cmd)
        if handler is None:
            raise control.RequestError(
                f"unknown command {cmd!r} (known: {', '.join(sorted(self.commands))})"
            )
        return await handler(req)

    async def status(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"status": build_status(self.daemon)}

    async def metrics(self, req: dict[str, Any]) -> dict[str, Any]:
        """Every counter of the registry in the Prometheus text format."""
        return {"metrics": self.daemon.metrics.render()}

    async def discover(self, req: dict[str, Any]) -> dict[str, Any]:
        """The provider records this node knows, and how it found them."""
        region = req.get("region")
        if region is not None and (not isinstance(region, str) or len(region) > 32):
            raise control.RequestError("region: a tag of at most 32 characters is required")
        disc = self.daemon.discovery
        assert disc is not None  # made at start, before the control socket opens
        return {"discover": disc.report(region=region)}

    async def routes(self, req: dict[str, Any]) -> dict[str, Any]:
        """The overlay route table, and the exit [routing] chose with its score."""
        d = self.daemon
        exits = d.exits.report(now=trio.current_time()) if d.exits is not None else None
        return {
            "routes": {
                "destinations": d.routing.status() if d.routing is not None else [],
                "exit": None
                if exits is None
                else {k: v for k, v in exits.items() if k != "providers"},
            }
        }

    async def exits(self, req: dict[str, Any]) -> dict[str, Any]:
        """The providers [routing] knows and their scores (node/core/exits.py)."""
        d = self.daemon
        if d.exits is None:
            report: dict[str, Any] = {"mode": None, "exit": None, "providers": []}
        else:
            report = d.exits.report(now=trio.current_time())
        if d.open_exit is not None:  # a provider: what open admission let in and refused
            report["open_admission"] = dict(d.open_exit.counters())
        return {"exits": report}

    async def down(self, req: dict[str, Any]) -> dict[str, Any]:
        log.info("%s: stopping (tidewire down)", self.daemon.cfg.name)
        return {"after_reply": self.daemon.cancel.cancel}

    async def reload(self, req: dict[str, Any]) -> dict[str, Any]:
        """Re-read the config and apply the difference (node/reload.py)."""
        try:
            return {"reload": await self.daemon.reloader.reload()}
        except ReloadError as exc:
            raise control.RequestError(str(exc)) from None

    async def peer_add(self, req: dict[str, Any]) -> dict[str, Any]:
        peers = self.daemon.peers
        assert peers is not None
        spec = peer_spec_from_request(req)
        move = req.get("move", False)
        if not isinstance(move, bool):
            raise control.RequestError("move: true or false")
        if spec.public_key in peers.datapath.device.peers:
            raise control.RequestError("a peer with that public key is already configured")
        try:
            await peers.add(spec, move=move)
        except (PeerError, LocalProtocolError, NodeError, OSError) as exc:
            raise control.RequestError(str(exc)) from None
        return {}

    async def peer_remove(self, req: dict[str, Any]) -> dict[str, Any]:
        peers = self.daemon.peers
        assert peers is not None
        try:
            await peers.remove(request_key(req, "public_key"))
        except PeerError as exc:
            raise control.RequestError(str(exc)) from None
        return {}

    async def usage(self, req: dict[str, Any]) -> dict[str, Any]:
        d = self.daemon
        assert d.accountant is not None
        ledger = d.ledger
        rows = await trio.to_thread.run_sync(ledger.usage) if ledger else []
        return {"usage": {"interface": d.cfg.name, **usage(d.accountant, rows)}}

    async def report(self, req: dict[str, Any]) -> dict[str, Any]:
        acct = self.daemon.accountant
        assert acct is not None
        epoch = req.get("epoch")
        if epoch == "current":
            epoch = epoch_at(time.time(), acct.epoch_seconds)
        if not isinstance(epoch, int) or isinstance(epoch, bool) or not 0 <= epoch <= MAX_EPOCH:
            raise control.RequestError(
                f'epoch: an integer from 0 to {MAX_EPOCH}, or "current", is required'
            )
        try:
            return {"report": await epoch_report(acct, epoch)}
        except ValueError as exc:
            raise control.RequestError(str(exc)) from None
