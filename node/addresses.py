"""The router's own addresses, followed while an exit runs, for the exit policy.

An address added after start (a new uplink, a DHCP renewal, a second prefix) is
the router's as much as those read at start, and a client must not reach it.
`watch_addresses` re-reads every address of the namespace with
`ip -json address show` every few seconds, through `trio.run_process` so the
event loop never blocks, and hands the policy the new set when it changed, with
the prefix lengths that give the subnets' broadcasts and subnet-router anycast
addresses. Until the next read (at most `interval` seconds) the nftables wall
covers a new address: its input hook drops whatever comes from the tunnel.
"""

import json
import logging
from collections.abc import Awaitable, Callable
from ipaddress import ip_interface
from typing import Any

import trio

from tidewire.node.core.exit_policy import ExitPolicy

log = logging.getLogger("tidewire.node")

INTERVAL = 2.0  # seconds between reads: a fork of `ip` costs a few ms of a router's CPU


def parse_addresses(text: str) -> list[str] | None:
    """ADDR/PREFIXLEN of every address in `ip -json address show`'s answer (and each
    explicit IPv4 broadcast address), sorted; None if the answer is not such a list."""
    try:
        links = json.loads(text or "[]")
    except ValueError:
        return None
    if not isinstance(links, list):
        return None
    out: set[str] = set()
    for link in links:
        infos = link.get("addr_info", []) if isinstance(link, dict) else []
        for info in infos if isinstance(infos, list) else []:
            if not isinstance(info, dict):
                continue
            brd = info.get("broadcast")
            for entry in (f"{info.get('local')}/{info.get('prefixlen')}", f"{brd}/32"):
                try:
                    out.add(str(ip_interface(entry)))
                except ValueError:
                    continue  # a field missing or not an address: nothing to refuse
    return sorted(out)


async def read_addresses() -> list[str] | None:
    """Every address of this namespace, or None if `ip` failed."""
    try:
        result = await trio.run_process(
            ["ip", "-json", "address", "show"],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    except OSError as exc:
        log.warning("cannot run ip to read the router's addresses: %s", exc.strerror)
        return None
    if result.returncode != 0:
        return None
    return parse_addresses(result.stdout.decode(errors="replace"))


async def watch_addresses(
    policy: ExitPolicy | None,
    *,
    interval: float = INTERVAL,
    read: Callable[[], Awaitable[list[str] | None]] = read_addresses,
    task_status: Any = trio.TASK_STATUS_IGNORED,
) -> None:
    """Keep `policy`'s own addresses those of the namespace; started once they are read.

    Runs until cancelled; does nothing (and returns) without a policy, so a daemon may
    start it whatever its role: `await nursery.start(addresses.watch_addresses, policy)`.
    """
    if policy is None:
        task_status.started()
        return
    last: list[str] | None = None
    started = False
    while True:
        current = await read()
        if current is not None and current != last:
            if last is not None:
                gone, new = set(last) - set(current), set(current) - set(last)
                log.info(
                    "the router's addresses changed: %s",
                    ", ".join([*(f"+{a}" for a in sorted(new)), *(f"-{a}" for a in sorted(gone))]),
                )
            policy.set_own_addresses(current)
            last = current
        if not started:
            task_status.started()
            started = True
        await trio.sleep(interval)
