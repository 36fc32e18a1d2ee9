"""systemd's notify protocol (node/sdnotify.py) against a real AF_UNIX datagram socket
bound by the test, as a service manager binds it: the messages' bytes, both address
forms of $NOTIFY_SOCKET, and the watchdog's timing through the node's one timer task
on the autojump clock."""

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trio.testing

from tidewire.node.sdnotify import Notifier, Watchdog, socket_address, watchdog_interval
from tidewire.node.timers import TimerTask


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A manager's notify socket on a filesystem path, and its $NOTIFY_SOCKET."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify")
    sock.bind(path)
    sock.setblocking(False)
    yield sock, path
    sock.close()


def received(sock: socket.socket) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(sock.recv(4096))
        except BlockingIOError:
            return out


def test_ready_status_and_stopping_are_datagrams_of_assignments(
    manager: tuple[socket.socket, str],
) -> None:
    sock, path = manager
    n = Notifier({"NOTIFY_SOCKET": path})
    assert n.ready("tw0 up:\n 2 peers")
    assert n.status("busy")
    assert n.stopping()
    assert received(sock) == [
        b"READY=1\nSTATUS=tw0 up: 2 peers",  # a status is one line
        b"STATUS=busy",
        b"STOPPING=1\nSTATUS=stopping",
    ]
    assert n.sent == 3 and n.dropped == 0


def test_reloading_carries_the_monotonic_clock(manager: tuple[socket.socket, str]) -> None:
    sock, path = manager
    before = monotonic_usec()
    assert Notifier({"NOTIFY_SOCKET": path}).reloading()
    [msg] = received(sock)
    lines = msg.decode().split("\n")
    assert lines[0] == "RELOADING=1" and lines[2] == "STATUS=reloading"
    name, usec = lines[1].split("=")
    assert name == "MONOTONIC_USEC" and before <= int(usec) <= monotonic_usec()


def monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def test_an_abstract_socket_is_written_with_an_at_sign() -> None:
    name = f"tidewire-test-{os.getpid()}-{os.urandom(4).hex()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5)
    try:
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).notify("READY=1")
        assert sock.recv(100) == b"READY=1"
    finally:
        sock.close()


@pytest.mark.parametrize(
    ("value", "address"),
    [
        ("/run/systemd/notify", "/run/systemd/notify"),
        ("@x", "\0x"),
        ("", None),
        ("vsock:2:9", None),
    ],
)
def test_socket_address(value: str, address: str | None) -> None:
    assert socket_address({"NOTIFY_SOCKET": value}) == address
    assert socket_address({}) is None


def test_without_a_manager_nothing_is_sent() -> None:
    n = Notifier({})
    assert not n.enabled and not n.ready("x") and n.sent == 0 and n.dropped == 0


def test_a_manager_that_is_gone_loses_the_message_without_an_error(tmp_path: Path) -> None:
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody")})
    assert not n.notify("WATCHDOG=1")
    assert not n.notify("WATCHDOG=1")
    assert n.dropped == 2 and n.sent == 0


@pytest.mark.parametrize(
    ("environ", "interval"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "4242"}, 0.1),
        ({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"}, None),  # another process's
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec(
    environ: dict[str, str], interval: float | None
) -> None:
    assert watchdog_interval(environ, pid=4242) == interval


async def test_watchdog_pings_at_half_the_interval_from_the_timer_task(
    manager: tuple[socket.socket, str], autojump_clock: trio.testing.MockClock
) -> None:
    sock, path = manager
    n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})
    assert n.watchdog == 0.1
    timers = TimerTask(after=lambda: None)
    start = trio.current_time()
    dog = Watchdog(n, interval=n.watchdog, now=start)
    timers.add(dog)
    counts = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(timers.run)
        for t in (0.05, 0.15, 0.95, 1.05):
            await trio.sleep_until(start + t)
            counts.append(len(received(sock)))
        nursery.cancel_scope.cancel()
    assert counts == [1, 1, 8, 1]  # each read takes what arrived since the last
    assert dog.pings == 11  # at 0.0, 0.1, ... 1.0: one per 0.1 s, none early, none missed
    assert dog.deadline == pytest.approx(start + 1.1)


def test_watchdog_ignores_an_early_wake_up(manager: tuple[socket.socket, str]) -> None:
    sock, path = manager
    dog = Watchdog(Notifier({"NOTIFY_SOCKET": path}), interval=15.0, now=100.0)
    dog.handle_timer(now=100.0)
    dog.handle_timer(now=110.0)  # another component's deadline woke the timer task
    assert received(sock) == [b"WATCHDOG=1"] and dog.get_timer() == 115.0
    dog.handle_timer(now=115.0)
    assert received(sock) == [b"WATCHDOG=1"]
