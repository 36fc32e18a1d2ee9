"""nftables rules of the exit role: NAT out of the outbound interface, and the exit policy.

One table per interface, `inet tidewire_<iface>`, replaced as a whole: refused
destinations are dropped (and counted by nftables) in the forward and input
hooks for packets that come in from the tunnel; what may go out is masqueraded.
The node enforces the same policy in its own forwarding path first; these
rules are the second wall. The table is deleted on exit, and a stale one from
a killed run is deleted at the next start.
"""

import subprocess
from ipaddress import ip_address

from .core.exit_policy import ExitPolicy, Rule
from .errors import NodeError

TCP, UDP = 6, 17


def table_name(iface: str) -> str:
    return "tidewire_" + "".join(c if c.isalnum() else "_" for c in iface)


def _match(rule: Rule) -> str:
    fam = "ip" if rule.network.version == 4 else "ip6"
    m = f"{fam} daddr {rule.network}"
    if rule.port is not None:
        if rule.proto is None:
            m += f" meta l4proto {{ tcp, udp }} th dport {rule.port}"
        else:
            m += f" {'tcp' if rule.proto == TCP else 'udp'} dport {rule.port}"
    return m


def ruleset(iface: str, outbound: str, policy: ExitPolicy) -> str:
    name = table_name(iface)
    allow = [f'    iifname "{iface}" {_match(r)} accept' for r in policy.allow]
    deny = [f'    iifname "{iface}" {_match(r)} counter drop' for r in policy.deny]
    chain_body = "\n".join(allow + deny)
    return f"""table inet {name} {{
  chain forward {{
    type filter hook forward priority filter; policy accept;
{chain_body}
  }}
  chain input {{
    type filter hook input priority filter; policy accept;
{chain_body}
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    iifname "{iface}" oifname "{outbound}" masquerade
  }}
}}
"""


def _nft(script: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["nft", "-f", "-"], input=script, text=True, capture_output=True, timeout=30
        )
    except FileNotFoundError:
        raise NodeError(
            "the exit role needs nftables: the `nft` command is not installed"
        ) from None


def remove(iface: str) -> bool:
    """Delete the table if present; True if there was one."""
    result = _nft(f"delete table inet {table_name(iface)}\n")
    return result.returncode == 0


def install(iface: str, outbound: str, policy: ExitPolicy) -> None:
    remove(iface)
    result = _nft(ruleset(iface, outbound, policy))
    if result.returncode != 0:
        raise NodeError(f"nft refused the exit rules: {result.stderr.strip()}")


def enable_forwarding() -> dict[str, str]:
    """Turn on IPv4 and IPv6 forwarding; return the old values for `restore_forwarding`."""
    old = {}
    for path in ("/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"):
        try:
            with open(path) as f:
                old[path] = f.read().strip()
            with open(path, "w") as f:
                f.write("1")
        except OSError as exc:
            raise NodeError(f"cannot enable forwarding ({path}: {exc.strerror})") from None
    return old


def restore_forwarding(old: dict[str, str]) -> None:
    for path, value in old.items():
        try:
            with open(path, "w") as f:
                f.write(value)
        except OSError:
            pass


def is_ip(text: str) -> bool:
    try:
        ip_address(text)
    except ValueError:
        return False
    return True
