"""A lab censor: a middlebox namespace that routes between its links and drops what a
censor of WireGuard would drop, with nftables (payload matching; rules switch at run time).

    censor = Censor(host)                 # forwarding on, an empty forward chain
    censor.signature_drop(True)           # WireGuard's four message types, by bytes and size
    censor.block_udp_port(51820, True)    # every UDP datagram to one port
    censor.dropped("signature")           # packets each named counter has dropped

The signature rule matches the first four bytes of the UDP payload (`@th,64,32`: 32 bits
at bit 64 of the transport header, just past UDP's 8 bytes) and UDP's length field:
initiation 01 00 00 00 with length 156 (148 + 8), response 02 00 00 00 with 100, cookie
reply 03 00 00 00 with 72, transport data 04 00 00 00 at any length, on any port. Every
change rewrites the chain in one `nft -f` transaction; the named counters keep counting.
"""

from lab import Host

TABLE = "tidewire_censor"
SIGNATURES = (
    (0x01000000, 156),  # handshake initiation
    (0x02000000, 100),  # handshake response
    (0x03000000, 72),  # cookie reply
    (0x04000000, None),  # transport data, any length
)


class Censor:
    def __init__(self, host: Host) -> None:
        self.host = host
        self.signatures = False
        self.blocked: set[int] = set()
        host.run("sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1")
        host.run(
            ["nft", "-f", "-"],
            input=f"""table inet {TABLE} {{
    counter signature {{ }}
    counter blocked {{ }}
    chain forward {{ type filter hook forward priority 0; policy accept; }}
}}
""",
        )

    def signature_drop(self, on: bool) -> None:
        self.signatures = on
        self._apply()

    def block_udp_port(self, port: int, on: bool) -> None:
        if on:
            self.blocked.add(port)
        else:
            self.blocked.discard(port)
        self._apply()

    def dropped(self, counter: str) -> int:
        """Packets dropped so far by the rules of one named counter (signature, blocked)."""
        out = self.host.run(["nft", "list", "counter", "inet", TABLE, counter]).stdout
        words = out.split()
        return int(words[words.index("packets") + 1])

    def _apply(self) -> None:
        rules = [f"flush chain inet {TABLE} forward"]
        for port in sorted(self.blocked):
            rules.append(
                f'add rule inet {TABLE} forward udp dport {port} counter name "blocked" drop'
            )
        if self.signatures:
            for word, length in SIGNATURES:
                size = f"udp length {length} " if length is not None else ""
                rules.append(
                    f"add rule inet {TABLE} forward meta l4proto udp {size}"
                    f'@th,64,32 {word:#010x} counter name "signature" drop'
                )
        self.host.run(["nft", "-f", "-"], input="\n".join(rules) + "\n")
