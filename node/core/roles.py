"""What a peer is to this node, as far as accounting goes.

On a node with the exit role, native peers not marked `provider` are clients that owe
receipts (CLIENT); its WireGuard-mode peers cannot sign, so their traffic is counted as
unverified (STOCK). A peer marked `provider = true` is a provider this node uses: this
node counts its own traffic and signs receipts for it (PROVIDER). Any other peer has no
role and is not counted.
"""

from enum import Enum


class Role(Enum):
    CLIENT = "client"
    STOCK = "stock"
    PROVIDER = "provider"
