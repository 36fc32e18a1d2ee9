"""Addresses, MTU, routes and policy rules of the interface, through iproute2's `ip`.

Routes for the peers' allowed IPs go through the interface, where wg-quick's
`Table` says (`Routing`). With "auto", they go in the main table, and a default
route (0.0.0.0/0 or ::/0) is set up the way wg-quick does it, so the tunnel's own
encrypted packets do not loop into the tunnel: it goes into a table of its
own, selected by a rule for every packet that does not carry the node's
firewall mark (which the node sets on its UDP sockets), and a second rule makes
the main table ignore its own default route. With a table number, every route
goes in that table and no rule is added (the operator's rules choose it); with
"off", no route at all. Deleting the TUN interface removes its addresses and
routes; the rules are removed explicitly, and stale ones from a killed run are
removed at the next start.

Why `ip` and not a netlink library in the daemon: these are a handful of
operations at start, at stop and when peers change, and pyroute2 alone cost
12 MiB of resident memory for the daemon's whole life, a third of a router's
budget (issue 5). `ip -batch` speaks the same netlink from a short-lived process,
as wg-quick does, and `ip -json` answers the queries without any text parsing.
"""

import json
import subprocess
from dataclasses import dataclass
from ipaddress import IPv4Interface, IPv4Network, IPv6Interface, IPv6Network
from typing import Any

from .config.service import AUTO, MAIN_TABLE, OFF
from .errors import NodeError

Network = IPv4Network | IPv6Network
Interface = IPv4Interface | IPv6Interface

RULE_PRIORITY = 32000  # below main (32766)


TABLE = "table"  # a number given: every route in that table


@dataclass(frozen=True)
class Routing:
    """Where the peers' routes go, and the mark of the node's own outer packets."""

    mode: str  # AUTO, OFF or TABLE
    table: int  # AUTO: the table of default routes; TABLE: of every route; OFF: 0
    mark: int  # on the node's sockets; AUTO's rule sends everything else to `table`

    @classmethod
    def of(cls, table: int | str, *, mark: int) -> "Routing":
        """From wg-quick's Table ("auto", "off" or a number); auto's table is the mark, as
        wg-quick makes it."""
        if table == OFF:
            return cls(OFF, 0, mark)
        if table == AUTO:
            return cls(AUTO, mark, mark)
        assert isinstance(table, int)
        return cls(TABLE, table, mark)


def _ip(args: list[str], *, batch: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["ip", *args, *(["-batch", "-"] if batch is not None else [])],
            input="\n".join(batch) + "\n" if batch is not None else None,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except FileNotFoundError:
        raise NodeError("the ip command is missing: install iproute2") from None
    except subprocess.TimeoutExpired:
        raise NodeError(f"ip {' '.join(args)} did not finish within 30 s") from None


def _failure(result: subprocess.CompletedProcess[str], batch: list[str]) -> str:
    """The first error line of a failed batch, and the command it came from."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    reason = lines[0].removeprefix("Error: ").removeprefix("RTNETLINK answers: ") if lines else ""
    for line in lines:  # "Command failed -:N"
        if line.startswith("Command failed -:"):
            n = int(line.rsplit(":", 1)[1])
            if 1 <= n <= len(batch):
                return f"ip {batch[n - 1]}: {reason}"
    return f"ip: {reason or 'failed'}"


def _query(args: list[str]) -> list[dict[str, Any]]:
    result = _ip(["-json", *args])
    if result.returncode != 0:
        return []
    try:
        answer = json.loads(result.stdout or "[]")
    except ValueError:
        return []
    return [x for x in answer if isinstance(x, dict)] if isinstance(answer, list) else []


def _route_commands(verb: str, name: str, networks: list[Network], *, table: Routing) -> list[str]:
    """`ip -batch` lines for the peers' routes, in the tables `table` says."""
    if table.mode == OFF:
        return []
    return [
        f"route {verb} {net} dev {name}"
        + (f" table {table.table}" if table.mode == TABLE or net.prefixlen == 0 else "")
        for net in networks
    ]


def configure_link(name: str, *, addresses: list[Interface], mtu: int) -> None:
    if _ip(["link", "show", "dev", name]).returncode != 0:
        raise NodeError(f"interface {name} vanished while being configured")
    batch = [f"link set dev {name} mtu {mtu}"]
    batch += [f"address replace {a} dev {name}" for a in addresses]
    batch.append(f"link set dev {name} up")
    result = _ip([], batch=batch)
    if result.returncode != 0:
        raise NodeError(f"cannot configure {name}: {_failure(result, batch)}")


def add_routes(name: str, networks: list[Network], *, table: Routing) -> None:
    """Routes for allowed IPs; with AUTO, default routes go to their table with wg-quick's
    two rules."""
    batch = _route_commands("replace", name, networks, table=table)
    if batch:
        result = _ip([], batch=batch)
        if result.returncode != 0:
            raise NodeError(f"cannot add a route via {name}: {_failure(result, batch)}")
    defaults = {net.version for net in networks if net.prefixlen == 0}
    for version in sorted(defaults) if table.mode == AUTO else ():
        rules = [
            f"rule add not fwmark {table.mark}/0xffffffff table {table.table}"
            f" priority {RULE_PRIORITY + 1}",
            f"rule add table main suppress_prefixlen 0 priority {RULE_PRIORITY}",
        ]
        result = _ip([f"-{version}"], batch=rules)
        if result.returncode != 0:
            raise NodeError(f"cannot add the default-route rules: {_failure(result, rules)}")


def remove_routes(name: str, networks: list[Network], *, table: Routing) -> None:
    """Remove a peer's routes (best effort: a route may already be gone with the link)."""
    batch = _route_commands("del", name, networks, table=table)
    if batch:
        _ip(["-force"], batch=batch)


def remove_rules(table: int) -> None:
    """Remove the policy rules of `table` (ours, now or from a killed run)."""
    for version in (4, 6):
        stale = []
        for rule in _query([f"-{version}", "rule", "show"]):
            prio, tbl = rule.get("priority"), str(rule.get("table"))
            if (prio == RULE_PRIORITY + 1 and tbl == str(table)) or (
                prio == RULE_PRIORITY and tbl in ("main", str(MAIN_TABLE))
            ):
                stale.append(f"rule del priority {prio} table {tbl}")
        if stale:
            _ip([f"-{version}", "-force"], batch=stale)


def local_addresses() -> list[str]:
    """Every address configured on this host (namespace), IPv4 and IPv6, as ADDR/PREFIXLEN
    (the exit policy derives the subnets' broadcast and anycast addresses from it)."""
    return [
        f"{info['local']}/{info['prefixlen']}" if "prefixlen" in info else str(info["local"])
        for link in _query(["address", "show"])
        for info in link.get("addr_info", [])
        if isinstance(info, dict) and info.get("local")
    ]


def default_route_interface() -> str | None:
    for version in (4, 6):
        for route in _query([f"-{version}", "route", "show", "default", "table", "main"]):
            if route.get("dev"):
                return str(route["dev"])
    return None


def route_get(address: str, *, mark: int) -> list[dict[str, Any]]:
    """How the kernel would send a datagram of ours (marked `mark`) to `address`."""
    return _query(["route", "get", address, "mark", str(mark)])
