"""What `tidewire client add` hands a stock WireGuard client: its addresses and its config.

`next_free` picks the lowest host address of each of the node's tunnel subnets (the
`address` entries of its config, one per family) that neither the node nor any peer
holds: a /32 in the IPv4 subnet and a /128 in the IPv6 one. `client_config` writes
the wg-quick text the WireGuard apps import: everything through the node
(0.0.0.0/0, ::/0) with a 25 s keepalive, which keeps a phone's NAT mapping open.
"""

from collections.abc import Iterable
from ipaddress import IPv4Network, IPv6Network, ip_interface, ip_network

Network = IPv4Network | IPv6Network
KEEPALIVE = 25  # seconds: what the WireGuard apps suggest behind NAT


class NoFreeAddress(Exception):
    pass


def next_free(subnets: Iterable[str], taken: Iterable[str]) -> list[str]:
    """One free host address per family of `subnets` ("10.99.0.1/24"), as /32 or /128."""
    held = [ip_network(t, strict=False) for t in taken]
    picked: list[str] = []
    families: set[int] = set()
    for text in subnets:
        iface = ip_interface(text)
        if iface.version in families:
            continue  # the first subnet of each family is the tunnel's
        families.add(iface.version)
        same = [h for h in held if h.version == iface.version]
        picked.append(_first_free(iface.network, int(iface.ip), same))
    return picked


def _first_free(net: Network, own: int, held: list[Network]) -> str:
    # a route covering the whole subnet or more (a provider's 0.0.0.0/0) holds no address of it
    inside = [h for h in held if h.prefixlen > net.prefixlen and _within(h, net)]
    spans = sorted((int(h.network_address), int(h.broadcast_address)) for h in inside)
    spans.append((own, own))
    spans.sort()
    addr = int(net.network_address) + 1
    last = int(net.broadcast_address) - (1 if net.version == 4 else 0)  # v4 broadcast
    for lo, hi in spans:
        if addr < lo:
            break
        addr = max(addr, hi + 1)
    if addr > last:
        raise NoFreeAddress(f"the tunnel subnet {net} has no free address left")
    return str(ip_network((addr, net.max_prefixlen)))


def _within(small: Network, big: Network) -> bool:
    return int(big.network_address) <= int(small.network_address) <= int(big.broadcast_address)


def client_config(
    *,
    private_key: str,
    addresses: list[str],
    dns: list[str],
    server_public_key: str,
    endpoint: str,
    name: str,
) -> str:
    lines = [
        f"# {name}: made by `tidewire client add`",
        "[Interface]",
        f"PrivateKey = {private_key}",
        f"Address = {', '.join(addresses)}",
    ]
    if dns:
        lines.append(f"DNS = {', '.join(dns)}")
    lines += [
        "",
        "[Peer]",
        f"PublicKey = {server_public_key}",
        f"Endpoint = {endpoint}",
        "AllowedIPs = 0.0.0.0/0, ::/0",
        f"PersistentKeepalive = {KEEPALIVE}",
    ]
    return "\n".join(lines) + "\n"
