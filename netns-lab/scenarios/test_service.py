"""`tidewire up` as systemd runs it (Type=notify, WatchdogSec, the journal), without systemd:
the test binds the notify socket a manager would and hands the node $NOTIFY_SOCKET,
$WATCHDOG_USEC and a stderr that $JOURNAL_STREAM names.

    test process ── AF_UNIX datagrams ◀── tidewire up (in a namespace) ──▶ journal file

READY=1 arrives once the interface has its address and the peer its route, WATCHDOG=1
every half $WATCHDOG_USEC while the node runs, STOPPING=1 on SIGTERM; log lines carry
sd-daemon priorities and no timestamp."""

import itertools
import os
import re
import signal
import socket
import sys
import time

from lab import TIDEWIRE, Lab, genkey, tidewire_toml

WATCHDOG_USEC = 400_000  # pings every 0.2 s
PEER_IP = "10.77.0.2"


def _datagrams(sock: socket.socket, *, until: float) -> list[tuple[float, str]]:
    """Every message that arrives before `until` (monotonic), with its arrival time."""
    out = []
    while (left := until - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            out.append((time.monotonic(), sock.recv(4096).decode()))
        except TimeoutError:
            break
    return out


def _wait_for_message(sock: socket.socket, line: str, *, timeout: float) -> list[str]:
    """Messages up to and including the first holding `line`; a deadline, never forever."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            msg = sock.recv(4096).decode()
        except TimeoutError:
            break
        seen.append(msg)
        if line in msg.split("\n"):
            return seen
    raise AssertionError(f"no {line} within {timeout} s; got {seen}")


def test_notify_watchdog_and_journal_lines_of_a_real_node() -> None:
    with Lab("sdnotify") as lab:
        host = lab.host("node")
        notify_path = lab.tmp / "notify"
        manager = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        manager.bind(str(notify_path))  # a path: abstract sockets belong to a namespace
        journal = lab.tmp / "journal"
        journal.touch()
        st = os.stat(journal)
        config = lab.tmp / "twsd.toml"
        config.write_text(
            tidewire_toml(
                name="twsd",
                private_key=genkey()[0],
                address=["10.77.0.1/24"],
                lab=lab,
                peers=[{"public_key": genkey()[1], "allowed_ips": [f"{PEER_IP}/32"]}],
            )
        )
        env = {
            "NOTIFY_SOCKET": str(notify_path),
            "WATCHDOG_USEC": str(WATCHDOG_USEC),
            "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}",
        }
        # stderr into the journal file (the same inode), as systemd connects it
        proc = host.spawn(
            ["sh", "-c", 'exec "$0" up "$1" 2>>"$2"', TIDEWIRE, str(config), str(journal)],
            name="tidewire-twsd",
            env=env,
        )
        try:
            seen = _wait_for_message(manager, "READY=1", timeout=20)
            # READY means the interface is configured and the peer installed
            assert "10.77.0.1/24" in host.run("ip -br addr show dev twsd").stdout
            assert PEER_IP in host.run("ip route show table all dev twsd").stdout
            ready = next(m for m in seen if "READY=1" in m.split("\n"))
            assert "STATUS=twsd up: 1 peers" in ready, ready

            _datagrams(manager, until=time.monotonic() + 0.01)  # what queued while we looked
            got = _datagrams(manager, until=time.monotonic() + 2.0)
            pings = [t for t, m in got if m == "WATCHDOG=1"]
            gaps = [b - a for a, b in itertools.pairwise(pings)]
            assert 7 <= len(pings) <= 13, got  # 10 in 2 s at one per 0.2 s
            assert all(0.1 < g < 0.4 for g in gaps), gaps

            proc.popen.send_signal(signal.SIGTERM)
            _wait_for_message(manager, "STOPPING=1", timeout=10)
            lab.wait_for(lambda: not proc.alive(), timeout=15, what="the node to stop")
            assert proc.popen.returncode == 0
        except BaseException:  # the node's log went to the journal file, not to lab.logs()
            print(f"----- journal of twsd -----\n{journal.read_text()}", file=sys.stderr)
            raise
        finally:
            manager.close()
        lines = journal.read_text().splitlines()
        assert lines, "no log lines"
        assert all(re.match(r"<[0-7]>", line) for line in lines), lines
        assert any(re.fullmatch(r"<6>tidewire\.node: twsd up: public key .*", x) for x in lines)
        assert not any(re.search(r"\d\d:\d\d:\d\d", line) for line in lines), lines
        assert "<6>tidewire.node: twsd: stopping (SIGTERM)" in lines
