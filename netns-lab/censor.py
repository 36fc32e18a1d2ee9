"""A lab censor: a middlebox namespace that routes between its links and does to traffic
what censors are documented to do, each rule switched on and off at run time by a test.

    censor = Censor(host)                  # forwarding on, every rule off
    censor.signature_drop(True)            # WireGuard's four message types, by bytes and size
    censor.block_udp(port=51820)           # every UDP datagram to one port ...
    censor.block_udp(seconds=120)          # ... or all UDP, lifting by itself after 2 minutes
    censor.unblock_udp()                   # (or `port=`) lift a block early
    censor.packet_threshold(20)            # kill a WireGuard-looking flow 20 packets in
    censor.tcp_classifier(True)            # flag fully encrypted TCP: RST, residual block
    censor.block_tcp("198.51.102.2", 8443) # a residual block by hand (on=False lifts it)
    censor.tcp_verdicts(); censor.residual()
    censor.dropped("signature")            # packets each named counter has dropped

Every rule is nftables in one table, whose forward chain is rewritten in one `nft -f`
transaction at each switch (the named counters keep counting):

- signature: the first four bytes of the UDP payload (`@th,64,32`: 32 bits at bit 64 of
  the transport header, just past UDP's 8 bytes) and UDP's length field: initiation
  01 00 00 00 with length 156 (148 + 8), response 02 00 00 00 with 100, cookie reply
  03 00 00 00 with 72, transport data 04 00 00 00 at any length, on any port.
- blocked: UDP to a port in the set `udp_ports`, or any UDP while `udp` is in the set
  `protocols`; an element may carry a timeout, after which the kernel removes it and the
  block lifts with no one there to lift it.
- threshold: the behaviour reported of Russia's TSPU against WireGuard and AmneziaWG
  (net4people/bbs #490 and its follow-ups): a UDP flow that opens with a handshake-looking
  exchange (a first datagram of 148 payload bytes answered by one of 92, whatever the
  bytes: AmneziaWG's junk type bytes do not hide it) passes a few packets, then is dropped
  for as long as its conntrack entry lives (each dropped packet refreshes it). The censor
  marks such flows (a conntrack mark) from its start, rule on or off, so a flow that
  opened before the switch is caught too; the count is conntrack's accounting (`ct
  packets`, both directions, from the flow's first packet, the two handshake packets
  not counted as data).
- residual: the TCP classifier (middlebox/tcp_censor.py, a process on the censor's path)
  adds a flagged server's address and port to the set `residual`, with a timeout; the
  chain drops that ip:port both ways until it expires.
"""

import json
import signal
import sys
from pathlib import Path
from typing import Any

from lab import Host, LabError, Proc

TABLE = "tidewire_censor"
LABDIR = Path(__file__).resolve().parent
SIGNATURES = (
    (0x01000000, 156),  # handshake initiation
    (0x02000000, 100),  # handshake response
    (0x03000000, 72),  # cookie reply
    (0x04000000, None),  # transport data, any length
)
OPENING, FLAGGED = 0x2, 0x1  # conntrack marks: an initiation-sized first datagram; answered
INITIATION, RESPONSE = 156, 100  # UDP lengths of WireGuard's handshake (148 and 92 + 8)
HANDSHAKE_PACKETS = 2


class Censor:
    def __init__(self, host: Host) -> None:
        self.host = host
        self.signatures = False
        self.threshold: int | None = None
        self.classifier: Proc | None = None
        self.classifiers: list[Proc] = []
        host.run("sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1")
        host.run("sysctl -qw net.netfilter.nf_conntrack_acct=1")
        host.run(
            ["nft", "-f", "-"],
            input=f"""table inet {TABLE} {{
    counter signature {{ }}
    counter blocked {{ }}
    counter threshold {{ }}
    counter residual {{ }}
    set udp_ports {{ type inet_service; flags timeout; }}
    set protocols {{ type inet_proto; flags timeout; }}
    set residual {{ type ipv4_addr . inet_service; flags timeout; }}
    chain forward {{ type filter hook forward priority 0; policy accept; }}
}}
""",
        )
        self._apply()

    # -- the switches ---------------------------------------------------------------

    def signature_drop(self, on: bool) -> None:
        self.signatures = on
        self._apply()

    def block_udp_port(self, port: int, on: bool) -> None:
        if on:
            self.block_udp(port=port)
        else:
            self.unblock_udp(port=port)

    def block_udp(self, *, port: int | None = None, seconds: float | None = None) -> None:
        """Drop UDP to one port, or all UDP; with `seconds`, the block lifts by itself."""
        timeout = f" timeout {round(seconds * 1000)}ms" if seconds else ""
        self._element("add", port, timeout)

    def unblock_udp(self, *, port: int | None = None) -> None:
        if self._blocked(port):
            self._element("delete", port, "")

    def block_tcp(self, addr: str, port: int, *, on: bool = True) -> None:
        """Drop TCP to and from one server ip:port (or stop), as the classifier's residual
        block does for a flagged server, by hand."""
        if on or f"{addr}:{port}" in self.residual():
            verb = "add" if on else "delete"
            element = f"residual {{ {addr} . {port} }}"
            self.host.run(["nft", "-f", "-"], input=f"{verb} element inet {TABLE} {element}\n")

    def packet_threshold(self, packets: int | None) -> None:
        """Kill each WireGuard-looking UDP flow after `packets` data packets (None: off)."""
        self.threshold = packets
        self._apply()

    def tcp_classifier(self, on: bool, *, residual: float = 180.0) -> None:
        """Start (or stop) the first-packet classifier; a flagged server ip:port stays
        blocked for `residual` seconds."""
        if self.classifier is not None:
            self.classifier.popen.send_signal(signal.SIGTERM)
            self.classifier.popen.wait(timeout=5)
            self.classifier = None
        if on:
            proc = self.host.spawn(
                [sys.executable, "-m", "middlebox.tcp_censor", TABLE, str(residual)],
                name="tcp-censor",
                env={"PYTHONPATH": str(LABDIR)},
            )
            self.host.lab.wait_for(
                lambda: "ready" in proc.log() or not proc.alive(),
                timeout=10,
                what="the TCP classifier",
            )
            if not proc.alive():
                raise LabError(f"the TCP classifier exited at start:\n{proc.log()}")
            self.classifier = proc
            self.classifiers.append(proc)

    # -- what it did ------------------------------------------------------------------

    def dropped(self, counter: str) -> int:
        """Packets dropped so far by the rules of one named counter (signature, blocked,
        threshold, residual)."""
        out = self.host.run(["nft", "list", "counter", "inet", TABLE, counter]).stdout
        words = out.split()
        return int(words[words.index("packets") + 1])

    def tcp_verdicts(self) -> list[dict[str, Any]]:
        """The classifier's judgements so far, oldest first."""
        lines = [line for p in self.classifiers for line in p.log().splitlines()]
        return [json.loads(line) for line in lines if line.startswith("{")]

    def residual(self) -> list[str]:
        """The server ip:port pairs under residual blocking now."""
        return [f"{ip}:{port}" for ip, port in self._elements("residual")]

    def udp_blocks(self) -> list[str]:
        """What UDP blocks hold now: port numbers, and "udp" for all of it."""
        ports = [str(p) for p in self._elements("udp_ports")]
        return ports + [str(p) for p in self._elements("protocols")]

    # -- nftables ---------------------------------------------------------------------

    def _element(self, verb: str, port: int | None, timeout: str) -> None:
        target = f"udp_ports {{ {port}{timeout} }}" if port else f"protocols {{ udp{timeout} }}"
        self.host.run(["nft", "-f", "-"], input=f"{verb} element inet {TABLE} {target}\n")

    def _blocked(self, port: int | None) -> bool:
        return (str(port) if port else "udp") in self.udp_blocks()

    def _elements(self, name: str) -> list[Any]:
        out = self.host.run(["nft", "-j", "list", "set", "inet", TABLE, name]).stdout
        for item in json.loads(out)["nftables"]:
            if "set" in item:
                return [_value(e) for e in item["set"].get("elem", [])]
        return []

    def _apply(self) -> None:
        t = f"add rule inet {TABLE} forward"
        rules = [
            f"flush chain inet {TABLE} forward",
            f'{t} udp dport @udp_ports counter name "blocked" drop',
            f'{t} meta l4proto @protocols counter name "blocked" drop',
            f'{t} ip daddr . tcp dport @residual counter name "residual" drop',
            f'{t} ip saddr . tcp sport @residual counter name "residual" drop',
        ]
        if self.signatures:
            for word, length in SIGNATURES:
                size = f"udp length {length} " if length is not None else ""
                match = f"meta l4proto udp {size}@th,64,32 {word:#010x}"
                rules.append(f'{t} {match} counter name "signature" drop')
        rules += [  # the censor always watches for handshakes; the threshold kills
            f"{t} ct mark 0 ct direction original ct original packets 1"
            f" udp length {INITIATION} ct mark set {OPENING:#x}",
            f"{t} ct mark {OPENING:#x} ct direction reply ct reply packets 1"
            f" udp length {RESPONSE} ct mark set {FLAGGED:#x}",
        ]
        if self.threshold is not None:
            limit = self.threshold + HANDSHAKE_PACKETS
            rules.append(
                f"{t} meta l4proto udp ct mark {FLAGGED:#x} ct packets > {limit}"
                ' counter name "threshold" drop'
            )
        self.host.run(["nft", "-f", "-"], input="\n".join(rules) + "\n")


def _value(element: Any) -> Any:
    """A set element from `nft -j`: a plain value, {"elem": {"val": ...}} with a timeout,
    or {"concat": [...]} for ip . port."""
    if isinstance(element, dict) and "elem" in element:
        element = element["elem"]["val"]
    if isinstance(element, dict) and "concat" in element:
        return tuple(element["concat"])
    return element
