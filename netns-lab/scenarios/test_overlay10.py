"""Ten nodes of overlay (netns-lab/overlay10_lab.py): relays and exits as Babel
neighbours on links of different delays and loss, clients with `exit = "auto"`.

One lab for the whole file (ten Python nodes on two cores start slowly), in order:
every client on its exit over the lowest-metric route, with every next hop as the known
graph says; c3 (`hops = 2`) through a relay only, e1 never seeing its addresses; the
link r1 - e1 carrying c1's pings cut (the box drops everything): the longest ping gap
at most 3 s, no duplicate and no ttl drop anywhere (no loop); relay r3 carrying c2
killed with -9: routed around; exit e1 killed with -9: c1 and c3 on e2 within 5 s.
Every wait has a deadline; a failure prints every node's log.
"""

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from common import TOOLS, ping
from lab import Host, Lab
from overlay10_lab import CHOICE, EXPECTED, RELAYS, TARGET, Mesh, build_overlay10
from test_exits import exits, routes
from test_paths import longest_gap, replies
from test_relay import ipv4_addresses, start_capture, stop_capture

sys.path.insert(0, str(TOOLS))
import rawcap


def route(mesh: Mesh, node: str, dest: str) -> tuple[str | None, int | None]:
    """The node's next hop to `dest` (by name) and the metric, from `tidewire routes
    --json`."""
    for r in routes(mesh.nodes[node])["destinations"]:
        if r["destination"] == mesh.keys[dest]:
            return mesh.name_of(r["next_hop"]), r["metric"]
    return None, None


def next_hop(mesh: Mesh, node: str, dest: str) -> str | None:
    return route(mesh, node, dest)[0]


def exit_of(mesh: Mesh, client: str) -> tuple[str | None, str | None, bool]:
    """The client's exit, the relay its session goes through, and whether that path
    answers (`tidewire exits --json`)."""
    data = exits(mesh.nodes[client])
    path = data["path"] or {}
    return mesh.name_of(data["exit"]), mesh.name_of(path.get("via")), bool(path.get("up"))


def relays_routed(mesh: Mesh) -> bool:
    """The mesh of relays and exits is there: every relay has a route to both exits."""
    return all(next_hop(mesh, r, e) is not None for r in RELAYS for e in ("e1", "e2"))


def show_routes(mesh: Mesh) -> None:
    for (n, d), hop in EXPECTED.items():
        if n in mesh.nodes:
            print(f"{n} -> {d}: next hop and metric {route(mesh, n, d)}, known graph: {hop}")


@pytest.fixture(scope="module")
def mesh() -> Iterator[Mesh]:
    with Lab("overlay10") as lab:
        start = time.monotonic()

        def converged(m: Mesh) -> None:
            try:
                lab.wait_for(lambda: relays_routed(m), timeout=60, what="the relays' routes")
            except Exception:
                show_routes(m)
                raise

        m = build_overlay10(lab, converged=converged)
        print(f"relays and exits routed {time.monotonic() - start:.1f} s after the start")
        yield m
        if lab.failed:
            raise RuntimeError("a phase failed: node logs above")


@contextlib.contextmanager
def phase(mesh: Mesh) -> Iterator[None]:
    """A failure prints every node's log (and the clients' exit tables) once."""
    try:
        yield
    except BaseException:
        lab = mesh.lab
        if not lab.failed:
            lab.failed = True
            print(f"\n===== overlay10 failed: node logs =====\n{lab.logs()}")
            for c in CHOICE:
                with contextlib.suppress(Exception):
                    print(c, json.dumps(exits(mesh.nodes[c]), indent=1))
        raise


def pinging(host: Host, seconds: int) -> Any:
    return host.spawn(
        ["ping", "-n", "-D", "-i", "0.1", "-W", "1", "-w", str(seconds), TARGET], name="ping"
    )


def gap_around(lab: Lab, host: Host, event: Any, *, seconds: int = 10) -> tuple[float, str]:
    """Ping TARGET every 0.1 s for `seconds`, calling `event()` after 2 s: the longest gap
    between answers from the event on (to the ping's last second: an outage that lasts
    to the end counts whole), and ping's output."""
    end = time.time() + seconds - 1.0
    proc = pinging(host, seconds)
    time.sleep(2.0)
    at = time.time()
    event()
    lab.wait_for(lambda: not proc.alive(), timeout=seconds + 10, what="ping to finish")
    times = replies(proc)
    assert len(times) > 10, proc.log()
    return longest_gap(times, at, max(end, times[-1])), proc.log()


def ttl_drops(mesh: Mesh, names: tuple[str, ...]) -> int:
    return sum(mesh.nodes[n].status()["relay"]["drops"].get("relay_ttl", 0) for n in names)


def test_every_client_takes_the_lowest_latency_route_to_its_exit(mesh: Mesh) -> None:
    with phase(mesh):
        lab = mesh.lab

        want: dict[str, Any] = {c: (e, EXPECTED[(c, e)], True) for c, e in CHOICE.items()}
        want |= {f"{n}->{d}": hop for (n, d), hop in EXPECTED.items()}
        seen: dict[str, Any] = {}

        def settled() -> bool:
            seen.update({c: exit_of(mesh, c) for c in CHOICE})
            seen.update({f"{n}->{d}": next_hop(mesh, n, d) for n, d in EXPECTED})
            return seen == want

        start = time.monotonic()
        try:
            lab.wait_for(settled, timeout=150, what="every client on its exit by the best route")
        except Exception:
            print("expected", want, "\nseen", seen)
            show_routes(mesh)
            raise
        print(f"clients settled {time.monotonic() - start:.1f} s after they started")
        for c in CHOICE:
            ping(mesh.hosts[c], TARGET, count=3)
        r = routes(mesh.nodes["c1"])
        assert r["exit"]["exit"] == mesh.keys["e1"] and r["exit"]["score"] > 0, r


def test_two_hops_the_exit_sees_only_a_relay(mesh: Mesh) -> None:
    with phase(mesh):
        lab, c3 = mesh.lab, mesh.hosts["c3"]
        assert ping(c3, "203.0.113.1", count=1, check=False)  # direct was possible
        cap, out = start_capture(lab, mesh.hosts["e1"], "e1")
        ping(c3, TARGET, count=10)
        stop_capture(lab, cap)
        table = exits(mesh.nodes["c3"])
        assert table["hops"] == 2 and table["path"]["transport"] == "relay", table
        row = next(p for p in table["providers"] if p["current"])
        assert row["relays"] and all(mesh.name_of(k) in RELAYS for k in row["relays"])
        seen = ipv4_addresses(list(rawcap.read(str(out))))
        ours = {a for (h, _), a in mesh.addr.items() if h == "c3"} | {"198.51.100.2"}
        assert not seen & ours, f"e1 saw c3's address: {seen & ours}"
        assert mesh.addr[("r5", "e1")] in seen  # the relay's
        peers = {p["public_key"]: p for p in mesh.nodes["e1"].status()["peers"]}
        assert peers[mesh.keys["c3"]]["active"]["transport"] == "relay"


def test_cutting_the_link_in_use_moves_traffic_within_3_s_without_a_loop(mesh: Mesh) -> None:
    with phase(mesh):
        exit_, via, _ = exit_of(mesh, "c1")
        assert exit_ == "e1" and via is not None
        box = mesh.boxes[(via, "e1")]  # the second link of c1's route: not c1's own
        before = ttl_drops(mesh, RELAYS)
        gap, log = gap_around(mesh.lab, mesh.hosts["c1"], lambda: box.set("both", loss=1.0))
        print(f"cut {via} - e1: the longest ping gap was {gap:.2f} s")
        assert gap <= 3.0, log
        assert "DUP!" not in log and "exceeded" not in log
        assert ttl_drops(mesh, RELAYS) == before == 0
        moved = exit_of(mesh, "c1")
        assert moved[0] == "e1" and moved[1] not in (via, None), moved
        box.set("both", delay=0.005 if via == "r1" else 0.100)  # mended, as it was


def test_a_relay_killed_is_routed_around(mesh: Mesh) -> None:
    with phase(mesh):
        exit_, via, _ = exit_of(mesh, "c2")
        assert exit_ == "e2" and via is not None
        gap, log = gap_around(mesh.lab, mesh.hosts["c2"], mesh.nodes[via].proc.popen.kill)
        print(f"kill -9 of relay {via}: the longest ping gap was {gap:.2f} s")
        assert gap <= 3.0, log
        moved = exit_of(mesh, "c2")
        assert moved[0] == "e2" and moved[1] not in (via, None), moved
        ping(mesh.hosts["c2"], TARGET, count=3)


def test_an_exit_killed_makes_its_clients_fail_over_within_5_s(mesh: Mesh) -> None:
    with phase(mesh):
        lab = mesh.lab

        def standby_up(c: str) -> bool:
            rows = {mesh.name_of(p["public_key"]): p for p in exits(mesh.nodes[c])["providers"]}
            e2 = rows.get("e2")
            return bool(e2 and e2["connected"] and e2["up"] and (e2["path"] or {}).get("up"))

        lab.wait_for(
            lambda: all(standby_up(c) for c in ("c1", "c3")), timeout=40, what="e2 on standby"
        )
        end = time.time() + 10 - 1.0  # the pings' last second (gap_around)
        procs = {c: pinging(mesh.hosts[c], 10) for c in ("c1", "c3")}
        time.sleep(2.0)
        at = time.time()
        mesh.nodes["e1"].proc.popen.kill()
        lab.wait_for(
            lambda: not any(p.alive() for p in procs.values()), timeout=20, what="the pings"
        )
        for c, proc in procs.items():
            times = replies(proc)
            gap = longest_gap(times, at, max(end, times[-1]) if times else end)
            print(f"kill -9 of exit e1: {c}'s longest ping gap was {gap:.2f} s")
            assert gap <= 5.0, proc.log()
            assert exit_of(mesh, c)[0] == "e2"
