"""Reloading a provider while a client's traffic flows (issue 13 and 16), on the exit lab:

    [client] tidewire ---- [provider] tidewire --exit, [share] download = 4 Mbit/s ---- [internet]

A UDP pull from the internet, at more than the rate, runs through the provider; halfway,
the provider's config gets a new peer, the client's allowed IPs grow, the download rate
doubles and the exit denies one more address, and the provider gets SIGHUP. The pull's
rate doubles, and the provider's handshake count with the client is unchanged (the
session survived). Then a broken config: `tidewire reload` exits 1 with the file and
line, and the node runs on exactly as it was. (UDP measures the shaper itself: TCP's
goodput on a busy shared machine swings with CPU contention, which CoDel sees as
queueing delay.)"""

import json
import re
import signal
import statistics
import time
from typing import Any

from common import handshaken, ping
from lab import Lab, Node, genkey
from topologies import build_exit_lab, tcp_check

SECONDS = 16  # of the pull; the reload is at RELOAD_AT
RELOAD_AT = 7
UDP_PULL = ["iperf3", "-c", "203.0.113.2", "-R", "-u", "-b", "16M", "-l", "1200"]


def handshakes(node: Node, key: str) -> int:
    text = node.cli("metrics").stdout
    m = re.search(rf'^tidewire_peer_handshakes_total{{peer="{re.escape(key)}"}} (\d+)$', text, re.M)
    assert m, text
    return int(m.group(1))


def settings(status: dict[str, Any]) -> dict[str, Any]:
    """What a reload may change in a status report (not the counters that move on)."""
    peers = {p["public_key"]: (p["allowed_ips"], p["mode"], p["persistent_keepalive"])
             for p in status["peers"]}
    share = {k: v for k, v in status["share"].items() if k != "clients"}
    return {"peers": peers, "share": share, "listen": status["listen"]}


def test_sighup_applies_peers_and_share_without_a_new_handshake() -> None:
    with Lab("reload") as lab:
        x = build_exit_lab(lab, with_wireguard_go=False, share={"download": "4 Mbit/s"})
        prov = x.provider_node
        ping(x.client, "203.0.113.2")
        lab.wait_for(lambda: handshaken(x.client_node), timeout=10, what="the client's session")
        client_key = x.client_node.status()["public_key"]
        before = handshakes(prov, client_key)
        assert before >= 1
        assert tcp_check(x.client, "2001:db8:113::2", 80)  # the exit lets it out, for now
        server = x.internet.spawn(["iperf3", "-s", "-p", "5201", "--forceflush"], name="iperf-s")
        lab.wait_for(lambda: "listening" in server.log(), timeout=10, what="iperf3 -s")
        pull = x.client.spawn(
            # UDP at more than either rate: what arrives is what the shaper lets out
            [*UDP_PULL, "-t", str(SECONDS), "-i", "1", "-J"],
            name="pull",
        )
        time.sleep(RELOAD_AT)
        _, new_key = genkey()
        text = prov.config.read_text()
        old_ips = '"10.99.0.2/32", "fd99::2/128"'
        text = text.replace(old_ips, old_ips + ', "10.99.5.0/24"')
        text = text.replace('download = "4 Mbit/s"', 'download = "8 Mbit/s"')
        text = text.replace("enabled = true", 'enabled = true\ndeny = ["2001:db8:113::2/128"]')
        text += f'\n[[peer]]\npublic_key = "{new_key}"\nallowed_ips = ["10.99.0.9/32"]\n'
        prov.config.write_text(text)
        prov.proc.popen.send_signal(signal.SIGHUP)
        lab.wait_for(lambda: "reloaded" in prov.proc.log(), timeout=10, what="the reload")
        lab.wait_for(lambda: not pull.alive(), timeout=SECONDS + 20, what="the pull to finish")
        assert prov.proc.alive(), prov.proc.log()
        result = json.loads(pull.log()[pull.log().index("{") :])
        rates = [i["sum"]["bits_per_second"] / 1e6 for i in result["intervals"]]
        slow = statistics.median(rates[2:RELOAD_AT])
        fast = statistics.median(rates[RELOAD_AT + 2 :])
        print(f"reload: {slow:.1f} Mbit/s before, {fast:.1f} after ({rates})")
        # inner bytes, so a little under the wire rate the shaper counts
        assert 0.8 * 4 <= slow <= 4, rates
        assert 1.6 <= fast / slow <= 2.3, rates
        assert "error" not in result, result.get("error")

        st = prov.status()
        assert st["share"]["download"] == 1_000_000 and st["share"]["download_rate"] == 1_000_000
        peers = {p["public_key"]: p for p in st["peers"]}
        assert new_key in peers
        assert "10.99.5.0/24" in peers[client_key]["allowed_ips"]
        routes = x.provider.run("ip route show table all dev twexit").stdout
        assert "10.99.5.0/24" in routes and "10.99.0.9" in routes, routes
        assert handshakes(prov, client_key) == before  # the session survived: no new handshake
        ping(x.client, "203.0.113.2")
        assert not tcp_check(x.client, "2001:db8:113::2", 80)  # the new exit rule holds
        assert tcp_check(x.client, "203.0.113.2", 80)

        # the same file again changes nothing; a restart-only change is reported, not applied
        prov.config.write_text(text.replace("listen_port = 51820", "listen_port = 51999"))
        reply = json.loads(prov.cli("reload", "--json").stdout)
        assert reply["changed"] is False
        assert reply["restart_needed"] == ["[interface] listen"]
        assert prov.status()["listen_port"] == 51820

        # a broken config: one sentence with the file and line, exit 1, nothing changed
        prov.config.write_text(text.replace('download = "8 Mbit/s"', 'download = "fast"'))
        status_before = prov.status()
        bad = prov.cli("reload", check=False)
        assert bad.returncode == 1
        line = text.splitlines().index('download = "8 Mbit/s"') + 1
        assert bad.stderr == (
            f"tidewire: {prov.config}:{line}: [share] download: 'fast' is not a rate like"
            ' "50 Mbit/s", "800 kbit/s" or "10 MB/s"; nothing changed\n'
        ), bad.stderr
        assert settings(prov.status()) == settings(status_before)
        ping(x.client, "203.0.113.2")
        assert handshakes(prov, client_key) == before
        assert prov.proc.alive()
