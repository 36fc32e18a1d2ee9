"""The client's kill switch: while the tunnel is configured, nothing leaves outside it.

One nftables table per interface, `inet tidewire_killswitch_IFACE`, with an output and
a forward chain that drop (and count) every packet not going out through the tunnel
interface, except: loopback, the node's own outer packets (its sockets carry the
firewall mark; and, by address, UDP to each peer's endpoint, so a restarted node can
handshake before it marks anything), IPv6 neighbour discovery and DHCP (the outer
address must keep its lease), and with
`kill_switch_allow_lan` the local networks (RFC 1918, link-local, ULA, multicast).

It is installed before the TUN exists and stays in place when the daemon dies (a
kill -9 cannot remove it, and that is the point: no traffic leaks while no daemon
runs). A clean stop removes it; `tidewire down IFACE` removes it when the daemon is
already dead (the table's name follows from the interface's). A record in the state
directory (`killswitch.json`), written before the table, tells the next start that a
killed run left one; the next start replaces the table, or removes it if the kill
switch is now off.
"""

import json
import logging
import subprocess
from ipaddress import ip_address
from pathlib import Path

from .errors import NodeError
from .state import atomic_write

log = logging.getLogger("tidewire.killswitch")

RECORD = "killswitch.json"
LAN4 = "10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 169.254.0.0/16, 224.0.0.0/4, 255.255.255.255"
LAN6 = "fe80::/10, fc00::/7, ff00::/8"
ND = "nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert"


def table_name(iface: str) -> str:
    return "tidewire_killswitch_" + "".join(c if c.isalnum() else "_" for c in iface)


def ruleset(iface: str, *, endpoints: list[tuple[str, int]], mark: int, allow_lan: bool) -> str:
    """The table: `endpoints` are the peers' (address, port), `mark` the node's sockets'."""
    common = [f'    oifname "{iface}" accept', '    oifname "lo" accept']
    if allow_lan:
        common += [f"    ip daddr {{ {LAN4} }} accept", f"    ip6 daddr {{ {LAN6} }} accept"]
    own = [
        f"    meta mark {mark:#x} accept",
        f"    icmpv6 type {{ {ND} }} accept",
        "    udp sport 68 udp dport 67 accept",  # DHCP: the lease of the outer address
        "    udp sport 546 udp dport 547 accept",  # DHCPv6
    ]
    for host, port in sorted(set(endpoints)):
        family = "ip" if ip_address(host).version == 4 else "ip6"
        own.append(f"    {family} daddr {host} udp dport {port} accept")
    output = "\n".join([*common, *own, "    counter drop"])
    forward = "\n".join([*common, "    counter drop"])
    return f"""table inet {table_name(iface)} {{
  chain output {{
    type filter hook output priority filter - 5; policy drop;
{output}
  }}
  chain forward {{
    type filter hook forward priority filter - 5; policy drop;
{forward}
  }}
}}
"""


def _nft(script: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["nft", "-f", "-"], input=script, text=True, capture_output=True, timeout=30
        )
    except FileNotFoundError:
        raise NodeError("kill_switch needs nftables: the `nft` command is not installed") from None
    except subprocess.TimeoutExpired:
        raise NodeError("nft did not finish within 30 s") from None


def install(
    iface: str,
    *,
    endpoints: list[tuple[str, int]],
    mark: int,
    allow_lan: bool,
    state_dir: Path,
) -> None:
    """Record, then replace the table in one nft transaction (blocking: off the loop)."""
    name = table_name(iface)
    atomic_write(state_dir / RECORD, json.dumps({"table": name, "iface": iface}).encode())
    # `add` then `delete` then the table: one transaction, so no moment without it
    script = f"add table inet {name}\ndelete table inet {name}\n"
    script += ruleset(iface, endpoints=endpoints, mark=mark, allow_lan=allow_lan)
    result = _nft(script)
    if result.returncode != 0:
        raise NodeError(f"nft refused the kill switch: {result.stderr.strip() or 'no reason'}")
    log.info("kill switch on: only %s, loopback and the peers' endpoints get out", iface)


def remove(iface: str, *, state_dir: Path | None = None) -> bool:
    """Delete the table and its record; True if there was a table. Best effort."""
    try:
        removed = _nft(f"delete table inet {table_name(iface)}\n").returncode == 0
    except NodeError as exc:
        log.warning("%s", exc)
        removed = False
    if state_dir is not None:
        (state_dir / RECORD).unlink(missing_ok=True)
    return removed


def left_by_killed_run(state_dir: Path) -> bool:
    return (state_dir / RECORD).exists()
