"""Node ids and distances (BEP 5), and ids tied to the node's address (BEP 42).

An id is 20 bytes; the distance between two is their XOR read as a big-endian integer.
BEP 42 ties the top 21 bits of an id to a CRC32C of the node's external address
masked per octet, so that whoever wants many ids near one target needs many
addresses in different networks; the last byte of the id carries the random `r`
that went into the hash. Local addresses are exempt.
"""

import ipaddress

ID_SIZE = 20

_V4_MASK = bytes((0x03, 0x0F, 0x3F, 0xFF))
_V6_MASK = bytes((0x01, 0x03, 0x07, 0x0F, 0x1F, 0x3F, 0x7F, 0xFF))
_EXEMPT = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "127.0.0.0/8")
)


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as iSCSI (RFC 3720) uses."""
    c = 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def distance(a: bytes, b: bytes) -> int:
    return int.from_bytes(a, "big") ^ int.from_bytes(b, "big")


def _prefix_crc(ip: str, r: int) -> int:
    raw = ipaddress.ip_address(ip).packed
    if len(raw) == 4:
        masked = bytearray(x & m for x, m in zip(raw, _V4_MASK, strict=True))
    else:
        masked = bytearray(x & m for x, m in zip(raw[:8], _V6_MASK, strict=True))
    masked[0] |= (r & 7) << 5
    return crc32c(bytes(masked))


def secure_id(ip: str, rand: bytes) -> bytes:
    """A BEP 42 id for a node whose external address is `ip`; `rand` is 20 random
    bytes (its last byte is the id's last byte and its low 3 bits are `r`)."""
    if len(rand) != ID_SIZE:
        raise ValueError("secure_id needs 20 random bytes")
    crc = _prefix_crc(ip, rand[19])
    head = bytes(((crc >> 24) & 0xFF, (crc >> 16) & 0xFF, ((crc >> 8) & 0xF8) | (rand[2] & 7)))
    return head + rand[3:19] + rand[19:20]


def exempt(ip: str) -> bool:
    """Local addresses need no BEP 42 id."""
    addr = ipaddress.ip_address(ip)
    return addr.version == 4 and any(addr in n for n in _EXEMPT)


def id_matches(node_id: bytes, ip: str) -> bool:
    """Whether `node_id` is one a node at `ip` may use (BEP 42): its top 21 bits match
    the CRC of the masked address with the `r` of its last byte."""
    if len(node_id) != ID_SIZE:
        return False
    if exempt(ip):
        return True
    crc = _prefix_crc(ip, node_id[19])
    want = crc >> 11
    have = int.from_bytes(node_id[:3], "big") >> 3
    return want == have
