"""A Merkle tree over receipt hashes, for epoch reports (RFC 6962 section 2.1 shape).

Leaves and inner nodes are domain-separated (0x00 and 0x01 prefixes) so a leaf can
never pose as a node; hashes are BLAKE2s-256. The root of no leaves is the hash of
nothing. A proof is the list of sibling hashes from the leaf up, each with the side
it sits on.
"""

from ..link.crypto import blake2s

EMPTY_ROOT = blake2s(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return blake2s(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return blake2s(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (RFC 6962's k)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def root(leaves: list[bytes]) -> bytes:
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = _split(len(leaves))
    return node_hash(root(leaves[:k]), root(leaves[k:]))


def proof(leaves: list[bytes], index: int) -> list[tuple[str, bytes]]:
    """Siblings from the leaf up: ("L", hash) sits left of the path, ("R", hash) right."""
    if not 0 <= index < len(leaves):
        raise IndexError("no such leaf")
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*proof(leaves[:k], index), ("R", root(leaves[k:]))]
    return [*proof(leaves[k:], index - k), ("L", root(leaves[:k]))]


def verify_proof(leaf: bytes, path: list[tuple[str, bytes]], expected_root: bytes) -> bool:
    h = leaf_hash(leaf)
    for side, sibling in path:
        h = node_hash(sibling, h) if side == "L" else node_hash(h, sibling)
    return h == expected_root
