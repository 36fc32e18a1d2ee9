"""What a running node changes on the host, and the tear-down that undoes it.

The per-interface lock (a second daemon for the same interface stops here), the exit's
firewall rules and forwarding, the policy rules of the default route (recorded before
they exist, so a kill -9's are removed at the next start) and, on the way out, each of
these undone in reverse with the TUN, the kill switch and the sockets. `take_lock` is quick;
the rest blocks, and runs in a worker thread (`off_loop`).
"""

import fcntl
import logging
import os
from typing import TYPE_CHECKING, Any

import trio

from tidewire.node import dns, firewall, netconf
from tidewire.node.core.exit_policy import ExitPolicy
from tidewire.node.errors import NodeError
from tidewire.node.state import atomic_write

if TYPE_CHECKING:
    from tidewire.node.daemon import Daemon

log = logging.getLogger("tidewire.node")


async def off_loop(fn: Any, *args: Any) -> Any:
    """Run a blocking call (`ip`, `nft`, sysctl files) in a worker thread."""
    return await trio.to_thread.run_sync(fn, *args)


def take_lock(daemon: "Daemon") -> None:
    """Hold the interface's lock file, with our pid in it, for the daemon's life."""
    assert daemon.cfg.control_socket is not None
    lock_path = daemon.cfg.control_socket.with_suffix(".lock")
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise NodeError(
            f"cannot create the lock file {lock_path}: {exc.strerror} (run as root?)"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = os.read(fd, 32).decode(errors="replace").strip()
        os.close(fd)
        raise NodeError(
            f"a tidewire daemon for {daemon.cfg.name} is already running"
            + (f" (pid {other})" if other else "")
            + f"; stop it with `tidewire down {daemon.cfg.name}`"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    daemon.lock_fd = fd


async def start_exit(daemon: "Daemon", policy: ExitPolicy | None) -> None:
    """The exit role's host side: its outbound interface, forwarding and nftables rules."""
    assert policy is not None
    cfg = daemon.cfg
    out = cfg.exit.outbound_interface or await off_loop(netconf.default_route_interface)
    if out is None:
        raise NodeError("the exit role needs an outbound interface: set [exit] outbound_interface")
    daemon.outbound_interface = out
    if await off_loop(firewall.remove, cfg.name):
        log.info("removed stale exit rules of %s from an earlier run", cfg.name)
    daemon.forwarding = await off_loop(firewall.enable_forwarding)
    await off_loop(firewall.install, cfg.name, out, policy)
    daemon.firewall_installed = True


def clear_stale_rules(daemon: "Daemon") -> None:
    """Remove the policy rules of this interface's last run, whatever its port was, and
    record this run's table before any rule of it exists (a node with a random listen
    port gets a new table every start, and a kill -9 leaves the old rules behind)."""
    record = daemon.cfg.state_dir / daemon.cfg.name / "rules.table"
    try:
        stale = int(record.read_text().strip() or 0)
    except (OSError, ValueError):
        stale = 0
    if stale and stale != daemon.table:
        netconf.remove_rules(stale)
    if daemon.table:
        netconf.remove_rules(daemon.table)
    atomic_write(record, f"{daemon.table}\n".encode())


def teardown(daemon: "Daemon") -> None:
    """Undo start-up (in a worker thread: it runs `nft` and `ip`)."""
    if daemon.ledger is not None:
        daemon.ledger.close()
    if daemon.dns_record is not None:
        dns.restore(daemon.dns_record)
    if daemon.firewall_installed:
        firewall.remove(daemon.cfg.name)
    if daemon.guard_installed:
        firewall.remove_guard(daemon.cfg.name)
    if daemon.forwarding:
        firewall.restore_forwarding(daemon.forwarding)
    if daemon.table:
        try:
            netconf.remove_rules(daemon.table)
        except Exception:  # pragma: no cover - best effort on the way out
            log.exception("removing routing rules")
    if daemon.tun_fd >= 0:
        os.close(daemon.tun_fd)  # removes the interface, its addresses and routes
        daemon.tun_fd = -1
    daemon.service.remove_kill_switch()  # after the TUN: nothing leaks on the way down
    daemon.udp.close()
    if daemon.masked is not None:
        daemon.masked.close()
    for stream in daemon.streams:
        stream.close()
    if daemon.lock_fd >= 0:
        os.close(daemon.lock_fd)
        daemon.lock_fd = -1
