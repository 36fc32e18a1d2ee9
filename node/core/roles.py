"""What a peer is to this node, as far as accounting goes.

On a node with the exit role, native peers not marked `provider` are clients that owe
receipts (CLIENT); its WireGuard-mode peers cannot sign, so their traffic is counted as
unverified (STOCK). A peer marked `provider = true` is a provider this node uses: this
node counts its own traffic and signs receipts for it (PROVIDER). Any other peer has no
role and is not counted: among them a control-only peer (no allowed IPs, such as a
gossip `bootstrap` node), which can send no inner packet the exit would forward and so
is no client, even on an exit. A relay with `[relay] require_receipts` makes a peer
its CLIENT when it relays through it or says hello (node/accounting.py `relayed_for`).
"""

from collections.abc import Sequence
from enum import Enum


class Role(Enum):
    CLIENT = "client"
    STOCK = "stock"
    PROVIDER = "provider"


def role_of(
    *, provider: bool, exit_enabled: bool, wireguard: bool, allowed_ips: Sequence[object]
) -> Role | None:
    """What a configured peer is to accounting (the rules above)."""
    if provider:
        return Role.PROVIDER
    if not exit_enabled or not allowed_ips:
        return None
    return Role.STOCK if wireguard else Role.CLIENT
