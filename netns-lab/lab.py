"""A small library for network-namespace labs: hosts, links, processes, deadlines, logs.

    with Lab("exit") as lab:
        client, provider = lab.host("client"), lab.host("provider")
        lab.link(client, provider, "198.51.100.2/24", "198.51.100.1/24")
        node = lab.tidewire(provider, config_text)     # runs `tidewire up` in the namespace
        lab.wait_for(lambda: ..., timeout=10, what="handshake")

Every namespace and process is torn down on exit, whatever happened; every wait
has a deadline; `lab.logs()` gathers every process's output, and a failure
inside the `with` block prints it. The lab's folder (configs with private keys,
sockets, logs) is removed after a clean exit and kept, named, after a failure.
A lab whose process was killed outright cannot tear down: the next lab removes
its namespaces (named after the dead process) and its folder (lab_stale.py).
Node configs and keys are written by lab_config.py, re-exported here.
"""

import itertools
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# re-exported: the scenarios import them from lab
from lab_config import genkey as genkey
from lab_config import tidewire_toml as tidewire_toml
from lab_stale import FOLDER, delete_netns, remove_stale

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
TIDEWIRE = str(VENV_BIN / "tidewire")
# TIDEWIRE_LAB_DATAPLANE=python runs every lab node on that data plane (unless a test
# chooses one): the whole lab on the Python path, as the native plane's reference
LAB_DATAPLANE = os.environ.get("TIDEWIRE_LAB_DATAPLANE", "")
_counter = itertools.count()


class LabError(Exception):
    pass


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.popen.poll() is None


@dataclass
class Host:
    lab: "Lab"
    name: str
    netns: str
    addresses: list[str] = field(default_factory=list)

    def run(
        self,
        cmd: str | list[str],
        *,
        timeout: float = 30,
        check: bool = True,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return self.lab.run_in(self, cmd, timeout=timeout, check=check, input=input)

    def spawn(
        self, cmd: str | list[str], *, name: str | None = None, env: dict[str, str] | None = None
    ) -> Proc:
        return self.lab.spawn_in(self, cmd, name=name or self.name, env=env)


@dataclass
class Node:
    """A tidewire daemon in the lab."""

    host: Host
    name: str
    config: Path
    socket: Path
    proc: Proc

    def cli(
        self, *args: str, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        return self.host.run(
            [TIDEWIRE, *args, "--socket", str(self.socket)], check=check, timeout=timeout
        )

    def status(self) -> dict[str, Any]:
        import json

        out = self.cli("status", "--json")
        result: dict[str, Any] = json.loads(out.stdout)
        return result


class Lab:
    def __init__(self, name: str) -> None:
        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces, TUN, nftables)")
        remove_stale()
        self.prefix = f"tw{os.getpid()}x{next(_counter)}{name[:4]}"
        self.hosts: list[Host] = []
        self.procs: list[Proc] = []
        self.failed = False
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{FOLDER}{name}-{os.getpid()}-"))

    # -- context ----------------------------------------------------------------

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.failed = True
            print(
                f"\n===== lab {self.prefix} failed: node logs =====\n{self.logs()}\n"
                f"(configs, sockets and logs kept in {self.tmp})",
                file=sys.stderr,
            )
        self.teardown()

    def teardown(self) -> None:
        for proc in reversed(self.procs):
            if proc.alive():
                proc.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        for proc in self.procs:
            try:
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait(timeout=5)
        for host in self.hosts:
            delete_netns(host.netns)
        self.hosts.clear()
        if not self.failed and not os.environ.get("TIDEWIRE_LAB_KEEP"):
            shutil.rmtree(self.tmp, ignore_errors=True)  # TIDEWIRE_LAB_KEEP=1 keeps it

    def logs(self) -> str:
        return "\n".join(
            f"----- {p.name} (exit {p.popen.poll()}) -----\n{p.log()}" for p in self.procs
        )

    # -- building ---------------------------------------------------------------

    def host(self, name: str) -> Host:
        host = Host(self, name, f"{self.prefix}-{name}")
        subprocess.run(["ip", "netns", "add", host.netns], check=True)
        self.hosts.append(host)
        host.run("ip link set lo up")
        host.run("sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0")
        # an address change (roaming) keeps the secondary address when the primary goes
        host.run(
            "sysctl -qw net.ipv4.conf.all.promote_secondaries=1"
            " net.ipv4.conf.default.promote_secondaries=1"
        )
        return host

    def link(
        self,
        a: Host,
        b: Host,
        a_addrs: str | list[str],
        b_addrs: str | list[str],
        *,
        a_if: str = "",
        b_if: str = "",
    ) -> tuple[str, str]:
        """A veth pair between two hosts, with addresses ("10.0.0.1/24" or a list)."""
        n = len([h for h in self.hosts])  # distinct names per lab
        a_if = a_if or f"to-{b.name}"[:15]
        b_if = b_if or f"to-{a.name}"[:15]
        tmp_a, tmp_b = (
            f"v{os.getpid() % 10000}a{n}{next(_counter)}",
            f"v{os.getpid() % 10000}b{n}{next(_counter)}",
        )
        subprocess.run(
            ["ip", "link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b], check=True
        )
        subprocess.run(["ip", "link", "set", tmp_a, "netns", a.netns, "name", a_if], check=True)
        subprocess.run(["ip", "link", "set", tmp_b, "netns", b.netns, "name", b_if], check=True)
        for host, ifname, addrs in ((a, a_if, a_addrs), (b, b_if, b_addrs)):
            for addr in [addrs] if isinstance(addrs, str) else addrs:
                host.run(["ip", "addr", "add", addr, "dev", ifname])
                host.addresses.append(addr.split("/")[0])
            host.run(["ip", "link", "set", ifname, "up"])
        return a_if, b_if

    # -- processes ----------------------------------------------------------------

    def _argv(self, host: Host, cmd: str | list[str]) -> list[str]:
        argv = shlex.split(cmd) if isinstance(cmd, str) else list(cmd)
        return ["ip", "netns", "exec", host.netns, *argv]

    def run_in(
        self,
        host: Host,
        cmd: str | list[str],
        *,
        timeout: float,
        check: bool,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        argv = self._argv(host, cmd)
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input)
        if check and result.returncode != 0:
            raise LabError(
                f"{host.name}: `{shlex.join(argv[4:])}` exited {result.returncode}: "
                f"{result.stderr.strip() or result.stdout.strip()}"
            )
        return result

    def spawn_in(
        self, host: Host, cmd: str | list[str], *, name: str, env: dict[str, str] | None
    ) -> Proc:
        log_path = self.tmp / f"{name}-{len(self.procs)}.log"
        log = open(log_path, "wb")  # noqa: SIM115 - handed to the child, closed right after
        popen = subprocess.Popen(
            self._argv(host, cmd),
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        log.close()
        proc = Proc(name, popen, log_path)
        self.procs.append(proc)
        return proc

    def tidewire(
        self,
        host: Host,
        name: str,
        config_text: str,
        *,
        args: tuple[str, ...] = (),
        conf_name: str | None = None,
        wait: bool = True,
        env: dict[str, str] | None = None,
        misbehave: tuple[str, ...] = (),
        binary: str = TIDEWIRE,
        start_timeout: float = 15,
    ) -> Node:
        """Write a config and run `tidewire up` with it; wait until its control socket answers.
        `misbehave` (e.g. ("silent",), ("overbill", "1.10"), ("rotate", "0.5")) runs it
        through tools/misbehave.py instead, as a node that cheats at accounting. `binary`
        runs another build of tidewire (a benchmark's baseline); `start_timeout` is how long
        its control socket may take to answer (a thousand peers take longer on a slow host)."""
        config = self.tmp / (conf_name or f"{name}.toml")
        config.write_text(config_text)
        sock = self.tmp / f"{name}.sock"
        cmd = [binary]
        if misbehave:
            cmd = [sys.executable, str(REPO / "netns-lab" / "tools" / "misbehave.py"), *misbehave]
        if LAB_DATAPLANE and "--dataplane" not in args:
            args = (*args, "--dataplane", LAB_DATAPLANE)
        proc = host.spawn([*cmd, "up", str(config), *args], name=f"tidewire-{name}", env=env)
        node = Node(host, name, config, sock, proc)
        if wait:
            self.wait_for(
                lambda: _answers(sock) or not proc.alive(),
                timeout=start_timeout,
                what=f"{name} to start",
            )
            if not proc.alive():
                raise LabError(f"tidewire {name} exited at start:\n{proc.log()}")
        return node

    def tidewire_pair(
        self,
        a: Host,
        b: Host,
        *,
        endpoint: str | list[str],
        tunnel_a: list[str],
        tunnel_b: list[str],
        mode: str = "native",
        names: tuple[str, str] = ("twa", "twb"),
        ports: tuple[int, int] = (51820, 51821),
        b_extra_peers: tuple[dict[str, Any], ...] = (),
        args: tuple[str, ...] = (),
        binary: str = TIDEWIRE,
        b_listen: list[str] | None = None,
        share: dict[str, Any] | None = None,
    ) -> tuple[Node, Node]:
        """Two tidewire nodes; a knows b's endpoint (or a list: its `endpoints`), b learns
        a's from its handshake.

        Each allows the other's tunnel addresses as host routes (/32, /128). `b_listen`
        (URLs, e.g. a masked:// listener) replaces b's listen port; `share` is both ends'
        [share] table.
        """
        (ka, pa), (kb, pb) = genkey(), genkey()

        def hosts(addrs: list[str]) -> list[str]:
            return [a.split("/")[0] + ("/128" if ":" in a else "/32") for a in addrs]

        peer_b = {
            "public_key": pb,
            "endpoints" if "://" in str(endpoint) else "endpoint": endpoint,
            "allowed_ips": hosts(tunnel_b),
            "mode": mode,
        }
        peer_a = {"public_key": pa, "allowed_ips": hosts(tunnel_a), "mode": mode}
        ends = []
        for host, name, key, tunnel, port, peers in (
            (a, names[0], ka, tunnel_a, ports[0], [peer_b]),
            (b, names[1], kb, tunnel_b, ports[1], [peer_a, *b_extra_peers]),
        ):
            listen = b_listen if host is b else None
            config = tidewire_toml(
                name=name,
                private_key=key,
                address=tunnel,
                lab=self,
                listen_port=None if listen else port,
                listen=listen,
                peers=peers,
                share=share,
            )
            ends.append(self.tidewire(host, name, config, args=args, binary=binary))
        na, nb = ends
        return na, nb

    # -- waiting ------------------------------------------------------------------

    def wait_for(
        self, predicate: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.1
    ) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise LabError(f"timed out after {timeout} s waiting for {what}")
            time.sleep(interval)


def _answers(path: Path) -> bool:
    """Does a daemon accept connections on this control socket (not just a stale file)?"""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True
