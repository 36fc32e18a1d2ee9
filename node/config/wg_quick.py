"""WireGuard's configuration format, exactly as wg-quick reads it (wg-quick(8), wg(8))."""

import re
from pathlib import Path
from typing import NoReturn

from tidewire.protocol.keys import derive_public
from tidewire.protocol.link.profile import Mode

from . import ConfigError, NodeConfig, PeerSpec, default_name, ifname_problem
from .fields import (
    Err,
    check_peers,
    dns_entries,
    endpoint,
    integer,
    interfaces,
    key,
    networks,
    peer_key,
    split,
)
from .service import WG_HOOKS, Hook, ServiceSpec, fwmark, hook, table

# the service keys: wg-quick's own, and tidewire's kill switch (an extension stock
# wg-quick refuses); hooks are read apart, since each line is one more command
SERVICE_KEYS = {"table", "fwmark", "saveconfig", "killswitch", "killswitchallowlan", *WG_HOOKS}
INTERFACE_KEYS = {"privatekey", "listenport", "address", "mtu", "dns", *SERVICE_KEYS}

Section = tuple[
    str, int, dict[str, tuple[str, int, str]]
]  # name, line, key -> (value, line, spelling)


def _wg_sections(path: Path, text: str) -> list[Section]:
    sections: list[Section] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"\[\s*(\w+)\s*\]", line)
        if m:
            name = m.group(1).lower()
            if name not in ("interface", "peer"):
                raise ConfigError(
                    path, n, f"[{m.group(1)}]", "unknown section; expected [Interface] or [Peer]"
                )
            sections.append((name, n, {}))
            continue
        if "=" not in line:
            raise ConfigError(path, n, line, "expected KEY = VALUE")
        k, v = (part.strip() for part in line.split("=", 1))
        if not sections:
            raise ConfigError(path, n, k, "is set before any [Interface] or [Peer] section")
        entries = sections[-1][2]
        lk = k.lower()
        if lk in entries and lk in ("address", "allowedips", "dns"):
            entries[lk] = (entries[lk][0] + "," + v, entries[lk][1], k)
        else:
            entries[lk] = (v, n, k)
    return sections


def _wg_err(path: Path, section: Section, title: str, lines: list[str]) -> Err:
    def err(key: str, message: str) -> NoReturn:
        line = section[2].get(key.lower(), ("", section[1], ""))[1]
        # a repeated key (AllowedIPs twice): point at the line holding the quoted bad value
        quoted = re.search(r"'([^']+)'", message)
        if quoted:
            for n in range(line, min(len(lines), line + 200) + 1):
                raw = lines[n - 1]
                if raw.split("=", 1)[0].strip().lower() == key.lower() and quoted.group(1) in raw:
                    line = n
                    break
        raise ConfigError(path, line, f"[{title}] {key}", message)

    return err


def load_wg(path: Path, text: str) -> NodeConfig:
    sections = _wg_sections(path, text)
    ifaces = [s for s in sections if s[0] == "interface"]
    if len(ifaces) != 1:
        line = ifaces[1][1] if len(ifaces) > 1 else None
        raise ConfigError(path, line, "[Interface]", "exactly one [Interface] section is required")
    iface = ifaces[0]
    lines = text.splitlines()
    entries, err = iface[2], _wg_err(path, iface, "Interface", lines)
    warnings: list[str] = []
    for lk, (_, n, k) in entries.items():
        if lk not in INTERFACE_KEYS:
            raise ConfigError(path, n, f"[Interface] {k}", "unknown key")
    if "privatekey" not in entries:
        err("PrivateKey", "is required")
    name = default_name(path)
    problem = ifname_problem(name)
    if problem:  # wg-quick takes the interface name from the file name
        raise ConfigError(
            path, None, "interface name", f"{problem} (got {name!r}, the file name without .conf)"
        )
    private = key(entries["privatekey"][0], err, "PrivateKey")
    cfg = NodeConfig(
        path=path,
        name=name,
        private_key=private,
        format="wg-quick",
        warnings=warnings,
    )
    if "listenport" in entries:
        cfg.listen_port = integer(entries["listenport"][0], err, "ListenPort", 0, 65535)
    if "address" in entries:
        cfg.addresses = interfaces(split(entries["address"][0]), err, "Address")
    if "mtu" in entries:
        cfg.mtu = integer(entries["mtu"][0], err, "MTU", 576, 65535)
    if "dns" in entries:
        cfg.dns.servers, cfg.dns.search = dns_entries(split(entries["dns"][0]), err, "DNS")
    cfg.service = _wg_service(path, iface, lines, err)
    own = (private, derive_public(private))
    for section in sections:
        if section[0] == "peer":
            cfg.peers.append(_wg_peer(path, section, lines, own))
    check_peers(cfg)
    return cfg


def _wg_service(path: Path, iface: Section, lines: list[str], err: Err) -> ServiceSpec:
    entries = iface[2]
    spec = ServiceSpec()
    if "table" in entries:
        spec.table = table(entries["table"][0], err, "Table")
    if "fwmark" in entries:
        spec.fwmark = fwmark(entries["fwmark"][0], err, "FwMark")
    for lk, attr, spelling in (
        ("saveconfig", "save_config", "SaveConfig"),
        ("killswitch", "kill_switch", "KillSwitch"),
        ("killswitchallowlan", "kill_switch_allow_lan", "KillSwitchAllowLAN"),
    ):
        if lk in entries:
            value = entries[lk][0].lower()
            if value not in ("true", "false"):
                err(spelling, f"must be true or false (got {entries[lk][0]!r})")
            setattr(spec, attr, value == "true")
    # every hook line is one more command, in the order of the file (wg-quick(8))
    for n in range(iface[1] + 1, len(lines) + 1):
        line = lines[n - 1].split("#", 1)[0].strip()
        if line.startswith("["):
            break
        k, sep, v = line.partition("=")
        if sep and k.strip().lower() in WG_HOOKS:
            key = f"[Interface] {k.strip()}"
            spec.hooks[WG_HOOKS[k.strip().lower()]].append(_hook(path, n, key, v))
    return spec


def _hook(path: Path, n: int, key: str, value: str) -> Hook:
    def err(_key: str, message: str) -> NoReturn:
        raise ConfigError(path, n, key, message)

    return hook(value, err, key, line=n, label=key)


def _wg_peer(path: Path, section: Section, lines: list[str], own: tuple[bytes, bytes]) -> PeerSpec:
    entries, err = section[2], _wg_err(path, section, "Peer", lines)
    known = ("publickey", "presharedkey", "endpoint", "allowedips", "persistentkeepalive")
    for lk, (_, n, k) in entries.items():
        if lk not in known:
            raise ConfigError(path, n, f"[Peer] {k}", "unknown key")
    if "publickey" not in entries:
        err("PublicKey", "is required")
    peer = PeerSpec(
        public_key=peer_key(entries["publickey"][0], err, "PublicKey", *own),
        mode=Mode.WIREGUARD,
        line=section[1],
    )
    if "presharedkey" in entries:
        peer.preshared_key = key(entries["presharedkey"][0], err, "PresharedKey")
    if "endpoint" in entries:
        peer.endpoint = endpoint(entries["endpoint"][0], err, "Endpoint")
        peer.where["endpoint"] = (entries["endpoint"][1], "[Peer] Endpoint")
    if "allowedips" in entries:
        peer.allowed_ips = networks(split(entries["allowedips"][0]), err, "AllowedIPs")
    if "persistentkeepalive" in entries:
        v = entries["persistentkeepalive"][0]
        if v.lower() != "off":
            peer.persistent_keepalive = integer(v, err, "PersistentKeepalive", 0, 65535)
            peer.keepalive_set = True
    return peer
