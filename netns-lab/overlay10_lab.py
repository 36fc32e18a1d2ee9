"""A ten-node overlay: relays and exits as Babel neighbours on a mesh whose links have
different delays and loss (the impairment box), and clients with `exit = "auto"`
(scenarios/test_overlay10.py). The links (`LINKS`), one-way delay and loss on a box:

    c1 - r1, c1 - r2, c2 - r3, c2 - r4, c3 - r5, r2 - r3, r1 - r5     plain veths
    r1 - e1  5 ms      r2 - e1  100 ms     r5 - e1  10 ms, 2% loss
    r3 - e2  5 ms      r4 - e2  100 ms     r5 - r4  25 ms

c1, c2 and c3 (`hops = 2`) are clients, r1-r5 relays, e1 and e2 exits.
Every node has its own namespace. Nothing forwards IP but `net`, the internet (not
drawn): it answers pings on 1.1.1.1 and routes between the exits' WAN sides and c3.
So c1 and c2 reach an exit only through relay frames along Babel's routes, and c3
could reach both exits directly, which `hops = 2` must never use. The exits are open
providers at one price: each client picks the nearest by metric (a hop is 256, RTT
adds up to 1024 between 10 and 400 ms: docs/routing.md). Relays have `[relay]
enabled`; clients and exits are stubs (they announce only themselves).

`EXPECTED` is the known graph's answer: for (node, destination), the next hop of the
lowest-metric route; `CHOICE` the exit each client picks.
"""

from dataclasses import dataclass, field
from typing import Any

from lab import Host, Lab, Node, genkey, tidewire_toml
from middlebox.impair import ImpairClient
from overlay_lab import RELAY
from topologies import impaired_link

TARGET = "1.1.1.1"
PORT = 51820
PRICE = 100_000  # both exits: the metric decides
RELAYS = ("r1", "r2", "r3", "r4", "r5")
EXITS = ("e1", "e2")
CLIENTS = ("c1", "c2", "c3")
# (a, b, one-way delay in s, loss) on a box; delay None: a plain veth
LINKS: tuple[tuple[str, str, float | None, float], ...] = (
    ("c1", "r1", None, 0.0),
    ("c1", "r2", None, 0.0),
    ("c2", "r3", None, 0.0),
    ("c2", "r4", None, 0.0),
    ("c3", "r5", None, 0.0),
    ("r2", "r3", None, 0.0),
    ("r1", "e1", 0.005, 0.0),
    ("r2", "e1", 0.100, 0.0),
    ("r3", "e2", 0.005, 0.0),
    ("r4", "e2", 0.100, 0.0),
    ("r5", "e1", 0.010, 0.02),
    ("r5", "r4", 0.025, 0.0),
    ("r1", "r5", None, 0.0),
)
EXPECTED = {  # (node, destination): next hop of the lowest-metric route
    ("c1", "e1"): "r1",  # 2 hops at 10 ms RTT; through r2 at 200 ms
    ("c2", "e2"): "r3",  # 2 hops at 10 ms RTT; through r4 at 200 ms
    ("c3", "e1"): "r5",  # its only neighbour: 2 hops to e1, 3 to e2
    ("r1", "e1"): "e1",  # one hop; through r5 two
    ("r5", "e1"): "e1",  # one hop with 2% loss; through r1 two
    ("r2", "e2"): "r3",
    ("r1", "e2"): "r5",  # c1 is a stub: through r5 and r4 is the only way
    ("r4", "e1"): "r5",
}
CHOICE = {"c1": "e1", "c2": "e2", "c3": "e1"}


@dataclass
class Mesh:
    lab: Lab
    hosts: dict[str, Host]
    nodes: dict[str, Node] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # public keys by node name
    boxes: dict[tuple[str, str], ImpairClient] = field(default_factory=dict)
    addr: dict[tuple[str, str], str] = field(default_factory=dict)  # (host, toward): address

    def name_of(self, key: str | None) -> str | None:
        return next((n for n, k in self.keys.items() if k == key), None)


def _wire(lab: Lab) -> Mesh:
    names = (*RELAYS, *EXITS, *CLIENTS, "net")
    mesh = Mesh(lab, {n: lab.host(n) for n in names})
    h = mesh.hosts
    for i, (a, b, delay, loss) in enumerate(LINKS, start=1):
        ends = f"172.16.{i}.1/24", f"172.16.{i}.2/24"
        if delay is None:
            lab.link(h[a], h[b], ends[0], ends[1])
        else:
            box = impaired_link(lab, h[a], h[b], ends[0], ends[1], name=f"i{a}{b}")
            box.set("both", delay=delay, loss=loss)
            mesh.boxes[(a, b)] = mesh.boxes[(b, a)] = box
        mesh.addr[(a, b)], mesh.addr[(b, a)] = ends[0][:-3], ends[1][:-3]
    net = h["net"]
    for host, wan, gw in (("e1", "203.0.113.1", "203.0.113.2"), ("e2", "192.0.2.1", "192.0.2.2")):
        lab.link(h[host], net, f"{wan}/24", f"{gw}/24", a_if="wan0", b_if=f"to-{host}")
        h[host].run(f"ip route add default via {gw}")  # the exit's outbound interface
    lab.link(h["c3"], net, "198.51.100.2/24", "198.51.100.1/24", a_if="wan0", b_if="to-c3")
    for prefix in ("203.0.113.0/24", "192.0.2.0/24"):  # c3 reaches the exits directly
        h["c3"].run(f"ip route add {prefix} via 198.51.100.1")
    net.run("sysctl -qw net.ipv4.ip_forward=1")  # inside the lab's namespace only
    net.run(f"ip addr add {TARGET}/32 dev lo")
    return mesh


def _neighbours(mesh: Mesh, name: str) -> list[dict[str, Any]]:
    """A `neighbour = true` peer for each link of `name`, at its address on that link."""
    out = []
    for a, b, _, _ in LINKS:
        if name in (a, b):
            other = b if name == a else a
            out.append(
                {
                    "public_key": mesh.keys[other],
                    "neighbour": True,
                    "endpoint": f"{mesh.addr[(other, name)]}:{PORT}",
                    "persistent_keepalive": 25,
                }
            )
    return out


def _start(mesh: Mesh, name: str, private: str, *, hops: int = 1) -> Node:
    config: dict[str, Any] = {"discovery": {"dht": False, "region": "lab"}}
    extra = ""
    if name in EXITS:
        config["exit"] = {"enabled": True, "open": True, "price": PRICE}
        config["share"] = {"download": "40 Mbit/s", "max_clients": 10}
    if name in RELAYS:
        extra = RELAY
    if name in CLIENTS:
        extra = f'\n[routing]\nexit = "auto"\nroutes = ["0.0.0.0/0"]\nhops = {hops}\n'
    index = (*RELAYS, *EXITS, *CLIENTS).index(name) + 1
    text = tidewire_toml(
        name=f"tw{name}",
        private_key=private,
        address=[] if name in CLIENTS else [f"10.77.{index}.1/32"],
        lab=mesh.lab,
        listen_port=PORT,
        peers=_neighbours(mesh, name),
        **config,
    )
    return mesh.lab.tidewire(mesh.hosts[name], f"tw{name}", text + extra)


def build_overlay10(lab: Lab, *, converged: Any) -> Mesh:
    """The mesh with relays and exits running; `converged(mesh)` is waited for (by the
    caller's deadline) before the clients start, as clients join an overlay that is
    already there. c3 has `hops = 2`."""
    mesh = _wire(lab)
    private = {}
    for n in (*RELAYS, *EXITS, *CLIENTS):
        private[n], mesh.keys[n] = genkey()
    for n in (*EXITS, *RELAYS):  # the exits first: the relays' first handshakes reach them
        mesh.nodes[n] = _start(mesh, n, private[n])
    converged(mesh)
    for n in CLIENTS:
        mesh.nodes[n] = _start(mesh, n, private[n], hops=2 if n == "c3" else 1)
    return mesh
