"""Addresses, MTU, routes and policy rules of the interface, over netlink (pyroute2).

Routes for the peers' allowed IPs go through the interface. A default route
(0.0.0.0/0 or ::/0) is set up the way wg-quick does it, so the tunnel's own
encrypted packets do not loop into the tunnel: it goes into a table of its
own, selected by a rule for every packet that does not carry the node's
firewall mark (which the node sets on its UDP sockets), and a second rule makes
the main table ignore its own default route. Deleting the TUN interface removes
its addresses and routes; the rules are removed explicitly, and stale ones from
a killed run are removed at the next start.
"""

import contextlib
from ipaddress import IPv4Interface, IPv4Network, IPv6Interface, IPv6Network

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from .errors import NodeError

Network = IPv4Network | IPv6Network
Interface = IPv4Interface | IPv6Interface

FIB_RULE_INVERT = 0x2
RULE_PRIORITY = 32000  # below main (32766)


def configure_link(name: str, *, addresses: list[Interface], mtu: int) -> int:
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=name)
        if not found:
            raise NodeError(f"interface {name} vanished while being configured")
        idx = int(found[0])
        ipr.link("set", index=idx, mtu=mtu)
        for a in addresses:
            try:
                ipr.addr("add", index=idx, address=str(a.ip), prefixlen=a.network.prefixlen)
            except NetlinkError as exc:
                if exc.code != 17:  # EEXIST
                    raise NodeError(f"cannot add address {a} to {name}: {exc}") from None
        ipr.link("set", index=idx, state="up")
        return idx


def add_routes(name: str, networks: list[Network], *, table: int) -> None:
    """Routes for allowed IPs; default routes go to `table` with wg-quick's two rules."""
    with IPRoute() as ipr:
        idx = int(ipr.link_lookup(ifname=name)[0])
        families = set()
        for net in networks:
            family = 2 if net.version == 4 else 10
            if net.prefixlen == 0:
                ipr.route("replace", dst=str(net), oif=idx, table=table, family=family)
                families.add(family)
            else:
                try:
                    ipr.route("replace", dst=str(net), oif=idx, family=family)
                except NetlinkError as exc:
                    raise NodeError(f"cannot add route {net} via {name}: {exc}") from None
        for family in families:
            ipr.rule(
                "add",
                family=family,
                table=table,
                fwmark=table,
                fwmask=0xFFFFFFFF,
                flags=FIB_RULE_INVERT,
                priority=RULE_PRIORITY + 1,
            )
            ipr.rule("add", family=family, table=254, suppress_prefixlen=0, priority=RULE_PRIORITY)


def remove_routes(name: str, networks: list[Network], *, table: int) -> None:
    """Remove a peer's routes (best effort: a route may already be gone with the link)."""
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=name)
        if not found:
            return
        idx = int(found[0])
        for net in networks:
            family = 2 if net.version == 4 else 10
            kwargs = {"table": table} if net.prefixlen == 0 else {}
            with contextlib.suppress(NetlinkError):
                ipr.route("del", dst=str(net), oif=idx, family=family, **kwargs)


def remove_rules(table: int) -> None:
    """Remove the policy rules of `table` (ours, now or from a killed run)."""
    with IPRoute() as ipr:
        for family in (2, 10):
            for rule in ipr.get_rules(family=family):
                prio = rule.get_attr("FRA_PRIORITY")
                tbl = rule.get_attr("FRA_TABLE")
                ours = (prio == RULE_PRIORITY + 1 and tbl == table) or (
                    prio == RULE_PRIORITY and tbl == 254
                )
                if ours:
                    with contextlib.suppress(NetlinkError):
                        ipr.rule("del", family=family, priority=prio, table=tbl)


def local_addresses() -> list[str]:
    """Every address configured on this host (namespace), IPv4 and IPv6."""
    with IPRoute() as ipr:
        return [str(a.get_attr("IFA_ADDRESS")) for a in ipr.get_addr() if a.get_attr("IFA_ADDRESS")]


def default_route_interface() -> str | None:
    with IPRoute() as ipr:
        for family in (2, 10):
            for route in ipr.get_default_routes(family=family, table=254):
                oif = route.get_attr("RTA_OIF")
                if oif:
                    links = ipr.get_links(oif)
                    if links:
                        return str(links[0].get_attr("IFLA_IFNAME"))
    return None
