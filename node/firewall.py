"""nftables rules: the handshake guard of every node, and the exit role's NAT and policy.

Every node (where nftables exists) installs `inet tidewire_guard_<iface>`: per-source
meters that drop handshake floods before they reach the socket (`_handshake_meters`).

One table per interface, `inet tidewire_<iface>`, replaced as a whole. For packets
that come in from the tunnel: in the forward hook, what conntrack finds invalid
(bad checksums, a fragment it cannot place: it would leave without NAT) and
refused destinations are dropped and counted; in the input hook everything not
allowed is dropped, since any packet for the router itself (its addresses, present
or added later, its broadcasts and anycast) is refused. What goes out is
masqueraded. The node enforces the same policy in its own forwarding path first;
these rules are the second wall. The table is deleted on exit, and a stale one
from a killed run is deleted at the next start.

Forwarding is a switch of the whole network namespace, which several exit daemons
may share: a state file per namespace in /run/tidewire (under an flock) records
the values from before the first holder and the live holders (pid and start
time). The last holder to stop restores the values; holders killed outright are
noticed, at the next start or stop of any node (exit or not) and at `tidewire down`
of a dead one, by their pid no longer naming them: when none is left alive, the
values are restored. The record lives in /run, not in a node's state directory: it
belongs to the namespace, which several nodes share, and it dies with the values it
records when the machine restarts.
"""

import contextlib
import fcntl
import json
import logging
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import ip_address
from pathlib import Path
from typing import Any

from .core.exit_policy import DNS_PORT, ExitPolicy, Rule
from .errors import NodeError
from .state import atomic_write

log = logging.getLogger("tidewire.node")

TCP, UDP = 6, 17
SYSCTL_ROOT = Path("/proc/sys")
FORWARDING_SYSCTLS = ("net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding")
RUN_DIR = Path("/run/tidewire")  # shared by every daemon on the host, whatever its namespace


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


HANDSHAKE_RATE = 100  # initiations or responses per second from one source, beyond a burst
HANDSHAKE_BURST = 50


def _handshake_meters(port: int) -> str:
    """Drop handshake messages beyond a per-source rate before they reach the socket.

    One sender can send a quarter of a million initiations a second; the node reads about
    half of them in Python, and the socket's queue overflows with the established peers'
    datagrams in it. The node's own limiter (protocol/link/ratelimiter.py) then comes too
    late, so the kernel drops what no honest peer sends: more than HANDSHAKE_RATE
    initiations (type 1, 148 bytes) or responses (type 2, 92 bytes) a second from one IPv4
    address or one IPv6 /64. An honest peer sends one every few seconds at most.
    """
    lines = []
    for kind, length in (("init", 148 + 8), ("resp", 92 + 8)):
        word = "0x01000000" if kind == "init" else "0x02000000"
        match = f"udp dport {port} udp length {length} @th,64,32 {word}"
        limit = f"limit rate over {HANDSHAKE_RATE}/second burst {HANDSHAKE_BURST} packets"
        lines.append(
            f"    {match} meter tw_{kind}4 size 65536 {{ ip saddr {limit} }} counter drop"
        )
        lines.append(
            f"    {match} meter tw_{kind}6 size 65536"
            f" {{ ip6 saddr & ffff:ffff:ffff:ffff:: {limit} }} counter drop"
        )
    return "\n".join(lines)


def guard_table(iface: str) -> str:
    return "tidewire_guard_" + "".join(c if c.isalnum() else "_" for c in iface)


def guard_ruleset(iface: str, listen_port: int) -> str:
    """The table every node installs where nftables exists, whatever its role."""
    return f"""table inet {guard_table(iface)} {{
  chain handshakes {{
    type filter hook input priority filter - 10; policy accept;
{_handshake_meters(listen_port)}
  }}
}}
"""


def install_guard(iface: str, listen_port: int) -> str | None:
    """Install the handshake meters; None if done, else why not (the node runs without)."""
    try:
        _nft(f"delete table inet {guard_table(iface)}\n")
        result = _nft(guard_ruleset(iface, listen_port))
    except NodeError as exc:
        return str(exc)
    return None if result.returncode == 0 else result.stderr.strip() or "nft failed"


def remove_guard(iface: str) -> None:
    with contextlib.suppress(NodeError):
        _nft(f"delete table inet {guard_table(iface)}\n")


def ruleset(iface: str, outbound: str, policy: ExitPolicy) -> str:
    name = table_name(iface)
    allow = [f'    iifname "{iface}" {_match(r)} accept' for r in policy.allow]
    deny = [
        f'    iifname "{iface}" {_match(r)} counter drop'
        for r in [*policy.deny, *policy.embedded_rules()]
    ]
    forward = "\n".join([f'    iifname "{iface}" ct state invalid counter drop', *allow, *deny])
    # whatever comes in from the tunnel for the router itself (any of its addresses, now
    # or later, broadcasts, anycast) is the router, which the policy refuses, but for
    # the clients' resolver: exactly its addresses, UDP and TCP port 53
    resolver = [
        f'    iifname "{iface}" {"ip" if a.version == 4 else "ip6"} daddr {a}'
        f" meta l4proto {{ tcp, udp }} th dport {DNS_PORT} accept"
        for a in policy.resolver
    ]
    local = "\n".join([*allow, *resolver, f'    iifname "{iface}" counter drop'])
    return f"""table inet {name} {{
  chain forward {{
    type filter hook forward priority filter; policy accept;
{forward}
  }}
  chain input {{
    type filter hook input priority filter; policy accept;
{local}
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


def install(iface: str, outbound: str, policy: ExitPolicy, *, swap: bool = False) -> None:
    """Install the exit rules. `swap` (a reload) replaces the table in one nft
    transaction: no moment without rules, and the old ones stay if nft refuses."""
    name = table_name(iface)
    if not swap:
        remove(iface)
    head = f"table inet {name}\ndelete table inet {name}\n" if swap else ""
    result = _nft(head + ruleset(iface, outbound, policy))
    if result.returncode != 0:
        raise NodeError(f"nft refused the exit rules: {result.stderr.strip()}")


def _netns_id() -> str:
    """This network namespace's identity: the forwarding switches are per namespace."""
    try:
        st = os.stat("/proc/self/ns/net")
    except OSError:
        return "0"
    return f"{st.st_dev}-{st.st_ino}"


def _start_time(pid: int) -> str | None:
    """The start time of a live process (field 22 of /proc/PID/stat), None if it is gone.
    With the pid it names one process: a pid reused after a kill -9 has another."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def _holder_alive(holder: object) -> bool:
    if not isinstance(holder, dict) or not isinstance(holder.get("pid"), int):
        return False
    start = _start_time(holder["pid"])
    return start is not None and start == holder.get("start")


def _load(path: Path) -> dict[str, Any] | None:
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring the unreadable forwarding state %s: %s", path, exc)
        return None
    if not isinstance(state, dict) or not isinstance(state.get("original"), dict):
        log.warning("ignoring the malformed forwarding state %s", path)
        return None
    if not isinstance(state.get("holders"), list):
        state["holders"] = []
    return state


def _save(path: Path, state: dict[str, Any]) -> None:
    """Replace the state file atomically and durably: it must outlive a crash or kill -9."""
    atomic_write(path, json.dumps(state, indent=1).encode(), mode=0o644)


@contextmanager
def _locked(run_dir: Path) -> Iterator[Path]:
    """Hold the forwarding lock (one for every namespace: it is held for a few writes);
    yield the path of this namespace's state file."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        fd = os.open(run_dir / "forwarding.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise NodeError(
            f"cannot record the forwarding state in {run_dir}: {exc.strerror} (run as root?)"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield run_dir / f"forwarding-{_netns_id()}.json"
    finally:
        os.close(fd)  # releases the lock


def _write_sysctl(root: Path, name: str, value: str) -> None:
    with open(root / name, "w") as f:
        f.write(value)


def enable_forwarding(
    *, sysctl_root: Path = SYSCTL_ROOT, run_dir: Path = RUN_DIR, pid: int | None = None
) -> dict[str, str]:
    """Turn on IPv4 and IPv6 forwarding for as long as this process holds it.

    The namespace's state file records the values from before the first holder, and the
    live holders; it is written before a switch moves, so a killed holder leaves behind
    what to restore. Holders that died (a kill -9) are dropped here and at every stop.
    Returns the token `restore_forwarding` takes.
    """
    pid = os.getpid() if pid is None else pid
    me = {"pid": pid, "start": _start_time(pid)}
    with _locked(run_dir) as path:
        state = _load(path)
        if state is None:
            original = {}
            for name in FORWARDING_SYSCTLS:
                try:
                    original[name] = (sysctl_root / name).read_text().strip()
                except OSError as exc:
                    raise NodeError(f"cannot read {sysctl_root / name}: {exc.strerror}") from None
            state = {"original": original, "holders": []}
        live = [h for h in state["holders"] if _holder_alive(h) and h.get("pid") != pid]
        state["holders"] = [*live, me]
        _save(path, state)
        token = {"sysctl_root": str(sysctl_root), "run_dir": str(run_dir), "pid": str(pid)}
        for name in FORWARDING_SYSCTLS:
            try:
                _write_sysctl(sysctl_root, name, "1")
            except OSError as exc:
                _release(path, state, sysctl_root=sysctl_root, pid=pid)
                raise NodeError(
                    f"cannot enable forwarding ({sysctl_root / name}: {exc.strerror})"
                ) from None
    return token


def restore_forwarding(token: dict[str, str]) -> None:
    """Give up this process's hold on forwarding; the last live holder restores the
    values from before the first. Best effort: it runs on the way out."""
    run_dir, sysctl_root = Path(token["run_dir"]), Path(token["sysctl_root"])
    try:
        with _locked(run_dir) as path:
            state = _load(path)
            if state is not None:
                _release(path, state, sysctl_root=sysctl_root, pid=int(token["pid"]))
    except (NodeError, OSError) as exc:
        log.warning("cannot restore the forwarding switches: %s", exc)


def recover_forwarding(*, sysctl_root: Path = SYSCTL_ROOT, run_dir: Path = RUN_DIR) -> bool:
    """At any node's start (and `tidewire down` of a dead one): if every holder of
    forwarding in this namespace was killed, put the switches back as they were before
    the first; True if it did. Best effort."""
    try:
        with _locked(run_dir) as path:
            state = _load(path)
            if state is None or any(_holder_alive(h) for h in state["holders"]):
                return False
            log.warning("restoring the forwarding switches a killed exit left on")
            _release(path, state, sysctl_root=sysctl_root, pid=-1)
            return True
    except (NodeError, OSError) as exc:
        log.warning("cannot check the forwarding switches: %s", exc)
        return False


def _release(path: Path, state: dict[str, Any], *, sysctl_root: Path, pid: int) -> None:
    """Drop `pid` and dead holders; restore and forget the originals if none is left."""
    live = [h for h in state["holders"] if _holder_alive(h) and h.get("pid") != pid]
    if live:
        state["holders"] = live
        _save(path, state)
        return
    for name, value in state["original"].items():
        if name in FORWARDING_SYSCTLS and isinstance(value, str):
            try:
                _write_sysctl(sysctl_root, name, value)
            except OSError as exc:
                log.warning("cannot restore %s: %s", sysctl_root / name, exc.strerror)
    path.unlink(missing_ok=True)


def is_ip(text: str) -> bool:
    try:
        ip_address(text)
    except ValueError:
        return False
    return True
