"""Node configuration: a tidewire TOML file or a WireGuard file exactly as wg-quick reads it.

The two are told apart by content (a WireGuard file is not valid TOML). Both
produce one `NodeConfig`; every error is a `ConfigError` naming the file, the
line and the key, in one sentence. The readers live in wg_quick.py and toml.py;
the checks they share in fields.py.
"""

import re
import tomllib
from dataclasses import dataclass, field
from ipaddress import IPv4Interface, IPv4Network, IPv6Interface, IPv6Network, ip_address
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from tidewire.node.core.accounting import AccountingConfig
from tidewire.node.core.exit_policy import Rule
from tidewire.node.core.relay import RelayConfig
from tidewire.node.core.relay import decode as decode_relay_key
from tidewire.node.core.relay import encode as encode_relay_key
from tidewire.protocol.link.profile import Mode
from tidewire.protocol.types import Path as LinkPath

from .service import ServiceSpec

if TYPE_CHECKING:
    from .routing import RoutingSpec
from .share import ShareConfig

Network = IPv4Network | IPv6Network
Interface = IPv4Interface | IPv6Interface

IFNAME = re.compile(r"[A-Za-z0-9_=+.-]{1,15}")
IFNAME_RULE = "must be 1-15 characters of letters, digits and _=+.-, and not . or .."
WG_SECTION = re.compile(r"^\s*\[\s*(interface|peer)\s*\]\s*(#.*)?$", re.IGNORECASE | re.MULTILINE)
TOML_HINT = re.compile(r'^\s*\[\[|^\s*\w+\s*=\s*"', re.MULTILINE)  # [[tables]], "strings"


def ifname_problem(name: object) -> str | None:
    """Why `name` is not a Linux interface name (dev_valid_name in net/core/dev.c), or None.

    The one check of both readers, for the node's own name and [exit]
    outbound_interface: a longer name would be cut by the TUN ioctl, and the name is
    written into the nftables script.
    """
    if not isinstance(name, str) or not IFNAME.fullmatch(name) or name in (".", ".."):
        return IFNAME_RULE
    return None


# Where a field was read, for errors found after loading: (line, "[[peer]] #1 endpoint").
Where = tuple[int | None, str]

# Who made a peer: "config" (the file, `peer add`, the wg API: configuration, which
# reload diffs and SaveConfig writes) or, dynamic and never configuration, "exit" (a
# provider the client's exit choice joined, node/exits.py) and "open" (a client an open
# provider admitted, node/exits_open.py)
Origin = Literal["config", "exit", "open"]


class ConfigError(Exception):
    def __init__(self, path: Path | str, line: int | None, key: str, message: str) -> None:
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {key}: {message}")
        self.path, self.line, self.key = path, line, key


@dataclass
class PeerSpec:
    public_key: bytes
    preshared_key: bytes | None = None
    # the path the node uses, as str(Path) prints it: "host:port" (udp) or "masked://host:port"
    endpoint: str | None = None
    fallbacks: list[str] = field(default_factory=list)  # the other `endpoints`, in order
    allowed_ips: list[Network] = field(default_factory=list)
    persistent_keepalive: int = 0
    keepalive_set: bool = False  # the file sets it: [nat] keepalive never overrides it
    mode: Mode = Mode.NATIVE
    provider: bool = False
    neighbour: bool = False  # an overlay neighbour: exchange routes with it (docs/routing.md)
    origin: Origin = "config"
    line: int = 0
    where: dict[str, Where] = field(default_factory=dict)

    @property
    def dynamic(self) -> bool:
        """Made at run time by the node itself: reload and SaveConfig leave it alone."""
        return self.origin != "config"


@dataclass
class ExitSpec:
    enabled: bool = False
    open: bool = False  # admit native clients with no configuration (docs/routing.md)
    price: int = 0  # micro-units of the token per GiB, as the node record carries it
    outbound_interface: str | None = None
    allow: list[Rule] = field(default_factory=list)
    deny: list[Rule] = field(default_factory=list)
    where: dict[str, Where] = field(default_factory=dict)


@dataclass
class ClientDefaults:
    """[client]: what `tidewire client add` writes into the configs it prints."""

    endpoint: str | None = None  # the node's public "host:port", as its clients reach it
    dns: list[str] = field(default_factory=list)


@dataclass
class DnsSpec:
    servers: list[str] = field(default_factory=list)  # a client's resolvers while up
    search: list[str] = field(default_factory=list)  # its search domains
    resolver: bool = False  # a provider answers its clients on its tunnel addresses
    upstream: list[tuple[str, int]] = field(default_factory=list)  # empty: resolv.conf's


@dataclass
class DiscoverySpec:
    """[discovery]: dht, dht_port (None: a free port), dht_bootstrap, region, and the
    gossip `bootstrap` nodes: (link key, endpoint in canonical path text)."""

    dht: bool = False
    dht_port: int | None = None
    dht_bootstrap: list[tuple[str, int]] = field(default_factory=list)
    region: str = ""
    bootstrap: list[tuple[bytes, str]] = field(default_factory=list)


@dataclass
class NatSpec:
    """[nat] (nat.py): punch, mediate, and the automatic keepalive behind a NAT (s)."""

    punch: bool = True
    mediate: bool = True
    keepalive: int = 25


@dataclass
class TlsSpec:
    """[tls]: the tls:// listener's certificate and what refused connections get."""

    certificate: Path | None = None  # None (with key None): self-signed, in the state dir
    key: Path | None = None
    fallback: tuple[str, int] | None = None  # an upstream web server; None: a static page


@dataclass
class NodeConfig:
    path: Path
    name: str
    private_key: bytes
    listen_port: int | None = None  # the udp:// listener (None: a free port)
    masked_port: int | None = None  # the masked:// listener (None: not listening on it)
    tcp_port: int | None = None  # the tcp:// listener
    tls_port: int | None = None  # the tls:// listener
    tls: "TlsSpec" = field(default_factory=lambda: TlsSpec())
    addresses: list[Interface] = field(default_factory=list)
    mtu: int = 1420
    state_dir: Path = Path("/var/lib/tidewire")
    control_socket: Path | None = None
    peers: list[PeerSpec] = field(default_factory=list)
    exit: ExitSpec = field(default_factory=ExitSpec)
    warnings: list[str] = field(default_factory=list)
    format: str = "toml"
    accounting: AccountingConfig = field(default_factory=AccountingConfig)
    epoch_seconds: int = 86400
    share: ShareConfig = field(default_factory=ShareConfig)
    client: ClientDefaults = field(default_factory=lambda: ClientDefaults())
    metrics_listen: tuple[str, int] | None = None  # [metrics] listen: host and port, or off
    dns: DnsSpec = field(default_factory=DnsSpec)
    discovery: DiscoverySpec = field(default_factory=DiscoverySpec)
    nat: NatSpec = field(default_factory=lambda: NatSpec())
    service: ServiceSpec = field(default_factory=ServiceSpec)  # Table, FwMark, hooks...
    routing: "RoutingSpec | None" = None  # [routing] (config/routing.py), None: not set
    relay: RelayConfig = field(default_factory=RelayConfig)  # [relay] (config/relay.py)

    def __post_init__(self) -> None:
        if self.control_socket is None:
            self.control_socket = Path("/run/tidewire") / f"{self.name}.sock"


def load(path: str | Path) -> NodeConfig:
    from .toml import load_toml
    from .wg_quick import load_wg

    p = Path(path)
    try:
        text = p.read_bytes().decode()
    except OSError as exc:
        raise ConfigError(p, None, "file", f"cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        line = p.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(p, line, "file", f"is not UTF-8 text (byte {exc.start})") from None
    except ValueError as exc:  # a NUL in the path given on the command line
        raise ConfigError(repr(str(p)), None, "file", f"cannot be read ({exc})") from None
    # A WireGuard file is not valid TOML (its values are unquoted); a TOML file may
    # still look like one to a loose eye, so TOML is tried first.
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        if WG_SECTION.search(text) and not TOML_HINT.search(text):
            return load_wg(p, text)
    return load_toml(p, text)


def default_name(path: Path) -> str:
    name = path.name.removesuffix(".conf").removesuffix(".toml")
    return name


def parse_endpoint(text: str) -> tuple[str, int]:
    """Split "host:port", "[v6]:port" or "v4:port"; raise ValueError if malformed."""
    m = re.fullmatch(r"\[([^\]]+)\]:(\d+)|([^:\[\]]+):(\d+)", text.strip())
    if not m:
        raise ValueError(f"{text!r} is not HOST:PORT (IPv6 as [ADDR]:PORT)")
    host = m.group(1) or m.group(3)
    digits = m.group(2) or m.group(4)
    if not digits.isascii():
        raise ValueError(f"port {digits!r} is not a number")
    port = int(digits)
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is not in 1-65535")
    try:
        ip_address(host)
    except ValueError:
        if any(ch.isspace() or not ch.isprintable() for ch in host) or len(host) > 253:
            raise ValueError(f"{host!r} is not a host name") from None
        try:
            host.encode("idna")
        except UnicodeError:
            raise ValueError(
                f"{host!r} is not a host name (each label is 1-63 characters)"
            ) from None
    return host, port


# the transports a URL may name (protocol/types.py UDP, MASKED, TCP, TLS, RELAY)
SCHEMES = ("udp", "masked", "tcp", "tls", "relay")
WILDCARDS = ("0.0.0.0", "::")


def parse_path(text: str) -> tuple[str, str, int]:
    """Split "scheme://host:port" (a scheme of SCHEMES) or a bare "host:port" (udp) into
    (transport, host, port); raise ValueError naming what is wrong."""
    text = text.strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "udp", text
    elif scheme not in SCHEMES:
        known = ", ".join(f"{s}://" for s in SCHEMES)
        raise ValueError(f"{text!r}: unknown scheme {scheme + '://'!r} (known: {known})")
    if scheme == "relay":  # relay://KEY: through the neighbour with that key (base64url)
        key = decode_relay_key(rest)
        if key is None:
            raise ValueError(f"{text!r}: relay:// takes the relay's public key (base64url)")
        return scheme, encode_relay_key(key), 0
    host, port = parse_endpoint(rest)
    return scheme, host, port


def format_path(transport: str, host: str, port: int) -> str:
    """The canonical text of a path, as `str(Path)` prints it ("host:port" for udp)."""
    return str(LinkPath(transport, (host, port)))
