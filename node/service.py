"""The daemon's service duties around its lifecycle: wg-quick's hooks, the kill switch
and SaveConfig (the daemon calls these at its steps; each one's rules are in its own
module: hooks.py, killswitch.py, config/save.py).

In the order of a start and a stop, as wg-quick(8) does them:

    PreUp -> kill switch -> TUN, addresses, routes, DNS -> PostUp
    ... running ...
    PreDown -> SaveConfig -> tear-down (routes, DNS, TUN) -> kill switch removed -> PostDown

SaveConfig writes only after a clean stop (a signal or `tidewire down`), as wg-quick
saves only at `wg-quick down`; a failed start writes nothing. The down hooks run
whenever PostUp has run, so what PostUp set up is undone even when the node stops on
an error.
"""

import logging
from typing import TYPE_CHECKING

import trio

from . import hooks, killswitch
from .config import edit
from .config.save import saved_text
from .errors import NodeError
from .requests import resolve

if TYPE_CHECKING:
    from .config import NodeConfig
    from .peers import Peers

log = logging.getLogger("tidewire.node")


class Service:
    def __init__(self, cfg: "NodeConfig", *, run_hooks: bool = True) -> None:
        self.cfg = cfg
        self.run_hooks = run_hooks and cfg.service.any_hooks()
        self.state_dir = cfg.state_dir / cfg.name
        self.kill_switch_on = False
        self.up = False  # PostUp ran: the down hooks are due
        self.pre_down_ran = False

    async def check(self) -> None:
        """Before anything changes: refuse hooks from a file others could edit."""
        if self.cfg.service.any_hooks() and not self.run_hooks:
            log.warning("%s: PreUp/PostUp/PreDown/PostDown skipped (--no-hooks)", self.cfg.path)
        if self.run_hooks:
            why = await trio.to_thread.run_sync(hooks.refusal, self.cfg.path)
            if why is not None:
                raise NodeError(
                    f"refusing the hooks of {self.cfg.path}: {why}; fix that, or start with"
                    " --no-hooks to skip them"
                )

    async def _hook(self, name: str, *, check: bool) -> None:
        if self.run_hooks and self.cfg.service.hooks[name]:
            cfg, commands = self.cfg, self.cfg.service.hooks[name]
            await trio.to_thread.run_sync(
                lambda: hooks.run(commands, iface=cfg.name, path=cfg.path, check=check)
            )

    async def pre_up(self) -> None:
        await self._hook("pre_up", check=True)

    async def post_up(self) -> None:
        await self._hook("post_up", check=True)
        self.up = True

    async def pre_down(self) -> None:
        if self.up and not self.pre_down_ran:
            self.pre_down_ran = True
            await self._hook("pre_down", check=False)

    async def post_down(self) -> None:
        if self.up:
            await self._hook("post_down", check=False)

    async def install_kill_switch(self, *, mark: int) -> None:
        """Before the TUN: the peers' endpoints are resolved first (DNS outside the tunnel
        is refused once the switch is on)."""
        cfg = self.cfg
        if not cfg.service.kill_switch:  # a killed run's switch goes; no nft call otherwise
            if await trio.to_thread.run_sync(killswitch.left_by_killed_run, self.state_dir):
                log.info("%s: removing the kill switch a killed run left", cfg.name)
                await trio.to_thread.run_sync(
                    lambda: killswitch.remove(cfg.name, state_dir=self.state_dir)
                )
            return
        endpoints = []
        for spec in cfg.peers:
            for text in [spec.endpoint, *spec.fallbacks] if spec.endpoint else []:
                path = await resolve(text)
                endpoints.append((str(path.address[0]), int(path.address[1])))
        await trio.to_thread.run_sync(
            lambda: killswitch.install(
                cfg.name,
                endpoints=endpoints,
                mark=mark,
                allow_lan=cfg.service.kill_switch_allow_lan,
                state_dir=self.state_dir,
            )
        )
        self.kill_switch_on = True

    def remove_kill_switch(self) -> None:
        """On the way out (blocking: the daemon's tear-down runs it in a thread)."""
        if self.kill_switch_on:
            killswitch.remove(self.cfg.name, state_dir=self.state_dir)
            self.kill_switch_on = False
            log.info("%s: kill switch off", self.cfg.name)

    def save_config(self, peers: "Peers | None") -> None:
        """SaveConfig: the running peers into the wg-quick file (blocking)."""
        cfg = self.cfg
        if not cfg.service.save_config or peers is None:
            return
        try:
            old = cfg.path.read_bytes()
            specs = list(peers.configured().values())  # not the dynamic peers
            new = saved_text(old.decode(), specs)
            if new.encode() != old:
                edit.replace_file(cfg.path, old, new)
                log.info("%s: SaveConfig: %d peers into %s", cfg.name, len(specs), cfg.path)
        except (OSError, UnicodeDecodeError, edit.EditError) as exc:
            log.error("%s: SaveConfig: cannot write %s: %s", cfg.name, cfg.path, exc)
