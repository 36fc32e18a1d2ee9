"""Where a punch may never be aimed, whoever names the endpoint.

An introduction makes us send datagrams to an address a third party names, so an
endpoint that is not a unicast host on some network is refused and counted by reason:
port 0, the unspecified address, loopback (our own host), multicast and broadcast,
link-local (not routable past one link, and the wrong interface to guess), and the
reserved ranges. Private and CGNAT ranges are allowed: two peers behind one NAT, or
a lab, punch there. IPv4-mapped IPv6 addresses are judged as their IPv4 address.
"""

import ipaddress

from tidewire.protocol.types import Endpoint


def refusal(endpoint: Endpoint) -> str | None:
    """Why `endpoint` must not be punched to, or None if it may."""
    host, port = endpoint
    if not 0 < port < 65536:
        return "port"
    try:
        addr: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(host)
    except ValueError:
        return "address"
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if addr.is_unspecified:
        return "unspecified"
    if addr.is_loopback:
        return "loopback"
    if addr.is_multicast or addr == ipaddress.IPv4Address("255.255.255.255"):
        return "multicast"
    if addr.is_link_local:
        return "link_local"
    if addr.is_reserved:
        return "reserved"
    return None
