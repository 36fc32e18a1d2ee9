"""WireGuard's cross-platform userspace API (https://www.wireguard.com/xplatform/), sans-IO.

A request is `get=1` or `set=1` on its own line, then `key=value` lines, then an empty
line; `frame_end` finds where one ends in a connection's buffer. `parse_request` turns
the bytes into a `Get` or a typed `SetRequest` and refuses the whole request on the first
bad line, with the errno wireguard-go answers (device/uapi.go): EPROTO for a line
without `=` or an unknown operation, EINVAL for an unknown key or a bad value. Nothing
is applied while parsing: `plan` then replays the request over a copy of the peers, in
order, as wireguard-go would apply it line by line (an allowed IP given to one peer
leaves any other; `remove` and `update_only` act on the whole peer; `replace_peers`
forgets every peer first), and returns the difference to make. `format_get` writes a
`get` answer from a snapshot. Keys are hex; errno values go on the wire negated, as
wireguard-go sends them and `wg` reads them.
"""

import errno
import re
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

Network = IPv4Network | IPv6Network
Endpoint = tuple[str, int]

MAX_REQUEST = 1 << 20  # bytes of one request: about 3,000 peers with a few allowed IPs each
KEY_HEX = re.compile(r"[0-9a-fA-F]{64}")
PREFIX = re.compile(r"([0-9A-Fa-f.:]+)/([0-9]{1,3})")
ZERO_KEY = bytes(32)


class UapiError(Exception):
    """A request refused; `errno` is the positive errno, the message says why (for the log)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.errno = code


@dataclass(frozen=True)
class Get:
    pass


@dataclass
class PeerOp:
    """One `public_key=` block of a `set`, with the lines that followed it."""

    public_key: bytes
    remove: bool = False
    update_only: bool = False
    preshared_key: bytes | None = None  # all zeros: none
    endpoint: Endpoint | None = None
    persistent_keepalive: int | None = None
    replace_allowed_ips: bool = False
    allowed_ips: list[tuple[bool, Network]] = field(default_factory=list)  # (add?, prefix)


@dataclass
class SetRequest:
    private_key: bytes | None = None
    listen_port: int | None = None
    fwmark: int | None = None
    replace_peers: bool = False
    peers: list[PeerOp] = field(default_factory=list)


@dataclass
class PeerState:
    """What the API reads and sets of one peer."""

    public_key: bytes
    preshared_key: bytes | None = None
    endpoint: Endpoint | None = None
    persistent_keepalive: int = 0
    allowed_ips: list[Network] = field(default_factory=list)
    last_handshake: float | None = None  # wall-clock seconds, None if never
    rx_bytes: int = 0
    tx_bytes: int = 0


@dataclass
class Snapshot:
    private_key: bytes
    listen_port: int
    fwmark: int
    peers: list[PeerState]


@dataclass
class Plan:
    """The difference a `set` makes: peers to remove, to add, and to change in place."""

    remove: list[bytes] = field(default_factory=list)
    add: list[PeerState] = field(default_factory=list)
    update: list[PeerState] = field(default_factory=list)  # the whole new state of each

    def __bool__(self) -> bool:
        return bool(self.remove or self.add or self.update)


# -- framing ----------------------------------------------------------------


def frame_end(buf: bytes | bytearray) -> int | None:
    """The length of the first complete request in `buf` (through its empty line), or None."""
    if buf[:1] == b"\n":
        return 1
    end = buf.find(b"\n\n")
    return None if end < 0 else end + 2


def parse_request(raw: bytes) -> Get | SetRequest:
    """A whole request, as `frame_end` cut it; raises UapiError, never anything else."""
    if len(raw) > MAX_REQUEST:
        raise UapiError(errno.EMSGSIZE, f"request longer than {MAX_REQUEST} bytes")
    lines = raw.decode("latin-1").split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    if lines and lines[-1] == "":
        lines.pop()  # the empty line that ends the request
    if not lines:
        raise UapiError(errno.EPROTO, "empty request")
    op, body = lines[0].removesuffix("\r"), lines[1:]
    if op == "get=1":
        if body:
            raise UapiError(errno.EINVAL, "trailing lines in a get request")
        return Get()
    if op != "set=1":
        raise UapiError(errno.EPROTO, f"unknown operation {op[:40]!r}")
    return _parse_set(body)


def _parse_set(lines: list[str]) -> SetRequest:
    req = SetRequest()
    peer: PeerOp | None = None
    for number, text in enumerate(lines, start=2):
        line = text.removesuffix("\r")  # as Go's bufio.Scanner reads lines
        key, sep, value = line.partition("=")
        if not sep:
            raise UapiError(errno.EPROTO, f"line {number}: no '=' in {line[:40]!r}")
        try:
            if key == "public_key":
                peer = PeerOp(public_key=_key(value))
                req.peers.append(peer)
            elif peer is None:
                _device_line(req, key, value)
            else:
                _peer_line(peer, key, value)
        except UapiError as exc:
            raise UapiError(exc.errno, f"line {number}: {exc}") from None
    return req


def _device_line(req: SetRequest, key: str, value: str) -> None:
    if key == "private_key":
        req.private_key = _key(value)
    elif key == "listen_port":
        req.listen_port = _uint(value, 0xFFFF, key)
    elif key == "fwmark":
        req.fwmark = _uint(value, 0xFFFFFFFF, key)
    elif key == "replace_peers":
        req.replace_peers = _true(value, key)
    else:
        raise UapiError(errno.EINVAL, f"unknown device key {key[:40]!r}")


def _peer_line(peer: PeerOp, key: str, value: str) -> None:
    if key == "update_only":
        peer.update_only = _true(value, key)
    elif key == "remove":
        peer.remove = _true(value, key)
    elif key == "preshared_key":
        peer.preshared_key = _key(value)
    elif key == "endpoint":
        peer.endpoint = _endpoint(value)
    elif key == "persistent_keepalive_interval":
        peer.persistent_keepalive = _uint(value, 0xFFFF, key)
    elif key == "replace_allowed_ips":
        _true(value, key)
        peer.replace_allowed_ips = True
        peer.allowed_ips.clear()  # what came before in this block is replaced too
    elif key == "allowed_ip":
        add = not value.startswith("-")
        peer.allowed_ips.append((add, _prefix(value if add else value[1:])))
    elif key == "protocol_version":
        if value != "1":
            raise UapiError(errno.EINVAL, f"protocol_version {value[:20]!r} is not 1")
    else:
        raise UapiError(errno.EINVAL, f"unknown peer key {key[:40]!r}")


def _key(value: str) -> bytes:
    if not KEY_HEX.fullmatch(value):
        raise UapiError(errno.EINVAL, "a key is 64 hex digits")
    return bytes.fromhex(value)


def _uint(value: str, limit: int, name: str) -> int:
    if not (value.isascii() and value.isdigit() and len(value) <= 20) or int(value) > limit:
        raise UapiError(errno.EINVAL, f"{name}: an integer from 0 to {limit}")
    return int(value)


def _true(value: str, name: str) -> bool:
    if value != "true":
        raise UapiError(errno.EINVAL, f"{name}: only 'true' is allowed")
    return True


def _endpoint(value: str) -> Endpoint:
    """A numeric endpoint, as Go's netip.ParseAddrPort reads it: ADDR:PORT or [ADDR6]:PORT."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:([0-9]{1,5})|([0-9.]+):([0-9]{1,5})", value)
    if not m:
        raise UapiError(errno.EINVAL, "endpoint: a numeric ADDR:PORT or [ADDR]:PORT")
    host, port = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    try:
        addr = ip_address(host)
    except ValueError:
        raise UapiError(errno.EINVAL, f"endpoint: {host[:40]!r} is not an IP address") from None
    if (addr.version == 6) != bool(m.group(1)) or not 0 < int(port) < 65536:
        raise UapiError(errno.EINVAL, "endpoint: a numeric ADDR:PORT or [ADDR]:PORT")
    return str(addr), int(port)


def _prefix(value: str) -> Network:
    m = PREFIX.fullmatch(value)
    try:
        if not m:
            raise ValueError
        addr = ip_address(m.group(1))
        if int(m.group(2)) > addr.max_prefixlen:
            raise ValueError
        return ip_network(f"{addr}/{int(m.group(2))}", strict=False)
    except ValueError:
        raise UapiError(errno.EINVAL, f"allowed_ip {value[:50]!r} is not ADDR/BITS") from None


# -- applying ---------------------------------------------------------------


def plan(req: SetRequest, current: list[PeerState], *, own_public: bytes) -> Plan:
    """The peers after `req`, replayed in order over `current`, as a difference to apply.

    A peer with the device's own key is ignored, as wireguard-go ignores it."""
    before = {p.public_key: p for p in current}
    state = {} if req.replace_peers else {k: replace(p, allowed_ips=list(p.allowed_ips))
                                          for k, p in before.items()}
    for op in req.peers:
        key = op.public_key
        if key == own_public:
            continue
        if op.remove:
            state.pop(key, None)
            continue
        peer = state.get(key)
        if peer is None:
            if op.update_only:
                continue
            peer = state[key] = PeerState(public_key=key)
        if op.preshared_key is not None:
            peer.preshared_key = None if op.preshared_key == ZERO_KEY else op.preshared_key
        if op.endpoint is not None:
            peer.endpoint = op.endpoint
        if op.persistent_keepalive is not None:
            peer.persistent_keepalive = op.persistent_keepalive
        if op.replace_allowed_ips:
            peer.allowed_ips = []
        for add, net in op.allowed_ips:
            if net in peer.allowed_ips:
                peer.allowed_ips.remove(net)
            if add:
                for other in state.values():  # a prefix belongs to one peer: the last set
                    if net in other.allowed_ips:
                        other.allowed_ips.remove(net)
                peer.allowed_ips.append(net)
    result = Plan(remove=[k for k in before if k not in state])
    for key, peer in state.items():
        old = before.get(key)
        if old is None:
            result.add.append(peer)
        elif _settable(old) != _settable(peer):
            result.update.append(peer)
    return result


def _settable(p: PeerState) -> tuple[object, ...]:
    return (p.preshared_key, p.endpoint, p.persistent_keepalive, sorted(map(str, p.allowed_ips)))


# -- answers ----------------------------------------------------------------


def format_get(snap: Snapshot) -> bytes:
    """The answer to `get=1`, through its `errno=0` and empty line."""
    out = [f"private_key={snap.private_key.hex()}", f"listen_port={snap.listen_port}"]
    if snap.fwmark:
        out.append(f"fwmark={snap.fwmark}")
    for p in snap.peers:
        out += [
            f"public_key={p.public_key.hex()}",
            f"preshared_key={(p.preshared_key or ZERO_KEY).hex()}",
            "protocol_version=1",
        ]
        if p.endpoint is not None:
            host, port = p.endpoint
            out.append(f"endpoint=[{host}]:{port}" if ":" in host else f"endpoint={host}:{port}")
        sec, nsec = _split_seconds(p.last_handshake)
        out += [
            f"last_handshake_time_sec={sec}",
            f"last_handshake_time_nsec={nsec}",
            f"tx_bytes={p.tx_bytes}",
            f"rx_bytes={p.rx_bytes}",
            f"persistent_keepalive_interval={p.persistent_keepalive}",
        ]
        out += [f"allowed_ip={net}" for net in p.allowed_ips]
    return "\n".join(out).encode() + b"\n" + format_errno(0)


def _split_seconds(t: float | None) -> tuple[int, int]:
    """Whole seconds and nanoseconds of a wall-clock time (0, 0 for never)."""
    if t is None or t <= 0:
        return 0, 0
    sec = int(t)
    return sec, min(999_999_999, round((t - sec) * 1e9))


def format_errno(code: int) -> bytes:
    """The status that ends every answer: `errno=-N` for a refusal, as wireguard-go writes it."""
    return f"errno={-code if code else 0}\n\n".encode()
