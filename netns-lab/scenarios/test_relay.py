"""A client reaches its exit only through a relay (docs/protocol/relay.md):

[c] .2 -- 198.51.100.0/24 -- .1 [r] .1 -- 192.0.2.0/24 -- .2 [e] .1 -- 203.0.113.0/24 -- .2 [net]
client               relay ([relay] enabled)    exit ([exit] enabled)        HTTP server

r does not forward IP (its namespace keeps ip_forward at 0) and c has no route to e's
network, so the only way from c to e is the relay. c's peer e has the one endpoint
relay://R: c's end-to-end session with e (an ordinary native session with receipts)
travels in relay frames inside c's link with r, then inside r's link with e.

Checked: ping and an HTTP download through e's exit role; a capture on e's interfaces
never shows c's address (only r's, and e's own towards the internet); a raw capture of
every interface of r never contains the marker string the HTTP body is made of; the
per-pair byte cap stops the flow when reached, counted per pair and in the drops.
"""

import hashlib
import sys
from pathlib import Path
from typing import Any

import pytest
from common import PY, TOOLS, ping
from lab import Host, Lab, Node, genkey, tidewire_toml
from test_accounting import usage
from test_paths import longest_gap, replies

sys.path.insert(0, str(TOOLS))
import rawcap

MARKER = b"tidewire-relay-marker-7f3a9c\n"
CAP = 6_000_000  # the relay's pair_cap, bytes


def b64url(key: str) -> str:
    return key.replace("+", "-").replace("/", "_").rstrip("=")


def peer(
    key: str, endpoint: str | None = None, *, allowed: list[str] | None = None
) -> dict[str, Any]:
    """A native peer; one we know the endpoint of gets a persistent keepalive (the relays'
    links stay up, and the far side learns our address)."""
    out: dict[str, Any] = {"public_key": key, "allowed_ips": allowed or []}
    if endpoint is not None:
        out |= {"endpoint": endpoint, "persistent_keepalive": 25}
    return out


def relay_node(
    lab: Lab,
    host: Host,
    name: str,
    key: str,
    *,
    client: str,
    exit_key: str,
    exit_at: str,
    extra: str = "",
) -> Node:
    """A relay between the client and the exit, which it knows at `exit_at`."""
    text = tidewire_toml(
        name=name,
        private_key=key,
        address=["10.97.0.1/32"],
        lab=lab,
        listen_port=51820,
        peers=[peer(client), peer(exit_key, f"{exit_at}:51820")],
    )
    return lab.tidewire(host, name, text + "\n[relay]\nenabled = true\n" + extra)


def exit_node(
    lab: Lab, host: Host, key: str, *, relays: list[str], client: str, exit_role: bool = True
) -> Node:
    text = tidewire_toml(
        name="twe",
        private_key=key,
        address=["10.99.0.1/24", "fd99::1/64"],
        lab=lab,
        listen_port=51820,
        peers=[*(peer(k) for k in relays), peer(client, allowed=["10.99.0.2/32", "fd99::2/128"])],
        exit={"enabled": True} if exit_role else None,
    )
    return lab.tidewire(host, "twe", text)


def client_node(
    lab: Lab,
    host: Host,
    key: str,
    *,
    relays: dict[str, str],
    exit_key: str,
    allowed: str,
    pay_relays: bool = False,
    misbehave: tuple[str, ...] = (),
) -> Node:
    """The client: a link to each relay (key -> its address), and the exit through them.
    `pay_relays` marks the relays `provider = true`: it says hello and signs their
    invoices for the relay frames on its links with them."""
    e = peer(exit_key, allowed=[allowed, "fd99::1/128"])
    e["endpoints"] = [f"relay://{b64url(k)}" for k in relays]
    if allowed == "0.0.0.0/0":
        e["provider"] = True
    links = [
        peer(k, f"{a}:51820") | ({"provider": True} if pay_relays else {})
        for k, a in relays.items()
    ]
    text = tidewire_toml(
        name="twc",
        private_key=key,
        address=["10.99.0.2/32", "fd99::2/128"],
        lab=lab,
        peers=[*links, e],
    )
    return lab.tidewire(host, "twc", text, misbehave=misbehave)


def build(
    lab: Lab,
    *,
    cap: str = f"{CAP} B",
    rate: str = "unlimited",
    receipts: bool = True,
    relay_paid: str = "",
    pay_by_record: bool = False,
    client_misbehave: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The line c - r - e - internet; without `receipts`, e is no exit and c routes only
    e's tunnel address to it. `relay_paid` (an [accounting] table's lines for r) makes r
    require receipts and c pay it: c's link with r is marked `provider = true`, or with
    `pay_by_record` c learns it from r's node record (gossip) and pays it unasked."""
    c, r, e, net = lab.host("c"), lab.host("r"), lab.host("e"), lab.host("internet")
    lab.link(c, r, "198.51.100.2/24", "198.51.100.1/24", a_if="eth0", b_if="down0")
    lab.link(r, e, "192.0.2.1/24", "192.0.2.2/24", a_if="up0", b_if="isp0")
    lab.link(e, net, "203.0.113.1/24", "203.0.113.2/24", a_if="wan0", b_if="eth0")
    e.run("ip route add default via 203.0.113.2")
    c.run("ip route add default via 198.51.100.1")
    assert r.run("sysctl -n net.ipv4.ip_forward").stdout.strip() == "0"
    www = lab.tmp / "www"
    www.mkdir()
    (www / "small.txt").write_bytes(MARKER * 70_000)  # about 2 MB
    (www / "large.txt").write_bytes(MARKER * 350_000)  # about 10 MB: past the cap
    net.spawn(
        [PY, "-m", "http.server", "80", "--bind", "203.0.113.2", "--directory", str(www)],
        name="http",
    )
    (kc, pc), (kr, pr), (ke, pe) = genkey(), genkey(), genkey()
    nodes = {
        "r": relay_node(
            lab,
            r,
            "twr",
            kr,
            client=pc,
            exit_key=pe,
            exit_at="192.0.2.2",
            extra=f'pair_cap = "{cap}"\npair_rate = "{rate}"\n'
            + (
                f"require_receipts = true\nprice = 250000\n\n[accounting]\n{relay_paid}"
                if relay_paid
                else ""
            ),
        ),
        "e": exit_node(lab, e, ke, relays=[pr], client=pc, exit_role=receipts),
        "c": client_node(
            lab,
            c,
            kc,
            relays={pr: "198.51.100.1"},
            exit_key=pe,
            allowed="0.0.0.0/0" if receipts else "10.99.0.1/32",
            pay_relays=bool(relay_paid) and not pay_by_record,
            misbehave=client_misbehave,
        ),
    }
    return {"hosts": {"c": c, "r": r, "e": e, "net": net}, "nodes": nodes, "keys": (pc, pr, pe)}


def start_capture(lab: Lab, host: Host, name: str) -> tuple[Any, Path]:
    out = lab.tmp / f"{name}.bin"
    proc = host.spawn([PY, str(TOOLS / "rawcap.py"), str(out)], name=f"cap-{name}")
    lab.wait_for(lambda: "capturing" in proc.log(), timeout=10, what=f"the capture on {name}")
    return proc, out


def stop_capture(lab: Lab, proc: Any) -> None:
    proc.popen.terminate()
    proc.popen.wait(timeout=10)


def ipv4_addresses(frames: list[tuple[str, bytes]]) -> set[str]:
    """Every IPv4 source and destination in the captured frames (Ethernet or bare IP)."""
    import socket

    seen = set()
    for _, frame in frames:
        for ip in (frame[14:] if frame[12:14] == b"\x08\x00" else b"", frame):
            if len(ip) >= 20 and ip[0] == 0x45:
                seen.add(socket.inet_ntoa(ip[12:16]))
                seen.add(socket.inet_ntoa(ip[16:20]))
                break
    return seen


def download(host: Host, name: str, *, timeout: float) -> tuple[int, bytes]:
    result = host.lab.run_in(
        host,
        ["curl", "-sS", "--max-time", str(timeout), f"http://203.0.113.2/{name}"],
        timeout=timeout + 10,
        check=False,
    )
    return result.returncode, result.stdout.encode()


def relay_status(node: Node) -> dict[str, Any]:
    status = node.status()["relay"]
    assert status is not None
    return status  # type: ignore[no-any-return]


def test_two_hop_privacy_and_the_pair_cap() -> None:
    with Lab("relay") as lab:
        x = build(lab)
        c, r, e = x["hosts"]["c"], x["hosts"]["r"], x["hosts"]["e"]
        pc, _, pe = x["keys"]
        assert not ping(c, "192.0.2.2", count=1, check=False)  # no way to e but the relay
        cap_r, bin_r = start_capture(lab, r, "relay")
        cap_e, bin_e = start_capture(lab, e, "exit")
        lab.wait_for(
            lambda: ping(c, "203.0.113.2", count=1, check=False),
            timeout=30,
            what="c to ping the internet through r and e",
        )
        ping(c, "203.0.113.2", count=5)
        code, body = download(c, "small.txt", timeout=60)
        assert code == 0 and body == MARKER * 70_000, f"curl exited {code}, {len(body)} bytes"
        stop_capture(lab, cap_r)
        stop_capture(lab, cap_e)

        # the client's path to e is the relayed one; e learned it from authenticated packets
        peers = {p["public_key"]: p for p in x["nodes"]["c"].status()["peers"]}
        assert peers[pe]["active"]["transport"] == "relay"
        e_peers = {p["public_key"]: p for p in x["nodes"]["e"].status()["peers"]}
        assert e_peers[pc]["active"]["transport"] == "relay"
        # c is not behind a NAT, so it never looked e up: no mediator told e its address
        assert "198.51.100.2" not in str(candidates(x["nodes"]["e"], pc))
        assert x["nodes"]["c"].status()["nat"]["counters"].get("lookups_sent", 0) == 0
        assert e_peers[pc]["tx_bytes"] > 2_000_000  # the download, sent on the relayed path

        # e's interfaces: r's address and e's own towards the internet, never c's
        seen_e = ipv4_addresses(list(rawcap.read(str(bin_e))))
        assert "192.0.2.1" in seen_e and "203.0.113.2" in seen_e
        assert "198.51.100.2" not in seen_e
        wan = [(name, f) for name, f in rawcap.read(str(bin_e)) if name == "wan0"]
        assert "198.51.100.2" not in ipv4_addresses(wan) and "10.99.0.2" not in ipv4_addresses(wan)
        # r's interfaces (both veths, its TUN, lo): the 2 MB of marker lines crossed it,
        # sealed; not one marker in any frame
        frames_r = list(rawcap.read(str(bin_r)))
        relayed = sum(len(f) for _, f in frames_r)
        assert relayed > 4_000_000, f"the relay's capture holds only {relayed} bytes"
        assert not any(MARKER[:20] in f for _, f in frames_r)
        assert not any(MARKER[:20] in f for name, f in rawcap.read(str(bin_e)) if name == "isp0")
        # the same search finds the marker where it is plaintext: on e's WAN side
        assert any(MARKER[:20] in f for _, f in wan)
        st = relay_status(x["nodes"]["r"])
        [pair] = st["pairs"]
        assert sorted(pair["ends"]) == sorted([pc, pe]) and pair["bytes"] > 2_000_000
        assert st["counters"]["forwarded"] == pair["frames"]
        assert x["nodes"]["r"].status()["peers"]  # r knows its two peers

        # past the cap: the large download stops, and the refusals are counted
        code, body = download(c, "large.txt", timeout=20)
        assert code != 0 and len(body) < len(MARKER) * 350_000
        st = relay_status(x["nodes"]["r"])
        [pair] = st["pairs"]
        assert pair["bytes"] <= CAP and pair["drops"].get("cap", 0) > 0
        assert st["drops"]["relay_cap"] == pair["drops"]["cap"]
        assert x["nodes"]["r"].status()["drops"]["relay_cap"] >= pair["drops"]["cap"]
        digest = hashlib.sha256(body).hexdigest()
        print(
            f"relayed {pair['bytes']} bytes until the cap; the large download got "
            f"{len(body)} bytes ({digest[:12]})"
        )


def ping6(host: Host, addr: str, *, size: int) -> bool:
    """One IPv6 ping of `size` payload bytes that may not be fragmented."""
    cmd = ["ping", "-6", "-c", "1", "-W", "2", "-M", "do", "-s", str(size), addr]
    return host.run(cmd, check=False, timeout=10).returncode == 0


def via(node: Node, key: str) -> str | None:
    """The relay (its key, base64url) of a peer's active relayed path."""
    for p in node.status()["peers"]:
        if p["public_key"] == key and p.get("active"):
            return str(p["active"]["endpoint"]).split(".")[0]
    return None


def candidates(node: Node, key: str) -> list[dict[str, Any]]:
    for p in node.status()["peers"]:
        if p["public_key"] == key:
            return list(p.get("candidates", []))
    return []


def test_a_relay_killed_with_9_is_routed_around() -> None:
    """c's peer e has two relayed paths, through r1 and r2; r1 is killed with -9 and c's
    path set fails over to r2 (no new handshake with e), with a bounded ping gap:

    [c] eth0 ---- [r1] ---- isp0 [e] wan0 ---- [internet]
        eth1 ---- [r2] ---- isp1
    """
    with Lab("relay2") as lab:
        c, r1, r2, e = lab.host("c"), lab.host("r1"), lab.host("r2"), lab.host("e")
        lab.link(c, r1, "198.51.100.2/24", "198.51.100.1/24", a_if="eth0", b_if="down0")
        lab.link(c, r2, "198.51.101.2/24", "198.51.101.1/24", a_if="eth1", b_if="down0")
        lab.link(r1, e, "192.0.2.1/24", "192.0.2.2/24", a_if="up0", b_if="isp0")
        lab.link(r2, e, "192.0.3.1/24", "192.0.3.2/24", a_if="up0", b_if="isp1")
        (kc, pc), (k1, p1), (k2, p2), (ke, pe) = genkey(), genkey(), genkey(), genkey()
        relays = {
            "twr1": relay_node(lab, r1, "twr1", k1, client=pc, exit_key=pe, exit_at="192.0.2.2"),
            "twr2": relay_node(lab, r2, "twr2", k2, client=pc, exit_key=pe, exit_at="192.0.3.2"),
        }
        exits = exit_node(lab, e, ke, relays=[p1, p2], client=pc, exit_role=False)
        client = client_node(
            lab,
            c,
            kc,
            relays={p1: "198.51.100.1", p2: "198.51.101.1"},
            exit_key=pe,
            allowed="10.99.0.1/32",
        )
        pinger = c.spawn(["ping", "-D", "-n", "-i", "0.1", "-W", "1", "10.99.0.1"], name="ping")
        lab.wait_for(lambda: len(replies(pinger)) >= 20, timeout=30, what="pings through r1")
        assert via(client, pe) == b64url(p1)
        # IPv6's minimum MTU crosses the relayed path at the default link MTU of 1420: 1280
        # bytes (1232 of ICMP payload), not fragmented; one byte more gets "too big"
        lab.wait_for(
            lambda: ping6(c, "fd99::1", size=1232), timeout=15, what="a 1280-byte IPv6 ping"
        )
        assert not ping6(c, "fd99::1", size=1233)
        # c raced its initiation on both paths; e learned the second one from it (and
        # answered it) once r2's link with e was up: only then is the handshake count final
        lab.wait_for(
            lambda: len(candidates(exits, pc)) == 2, timeout=15, what="e to learn r2's path"
        )
        handshakes = exits.status()["counters"].get("responses_sent", 0)

        killed_at = float(c.run("date +%s.%N").stdout)
        relays["twr1"].proc.popen.kill()  # kill -9: r1 answers nothing from here on
        relays["twr1"].proc.popen.wait(timeout=10)
        lab.wait_for(lambda: via(client, pe) == b64url(p2), timeout=10, what="c to move to r2")
        lab.wait_for(
            lambda: len([t for t in replies(pinger) if t > killed_at]) >= 30,
            timeout=15,
            what="pings through r2",
        )
        gap = longest_gap(replies(pinger), killed_at, float(c.run("date +%s.%N").stdout))
        print(f"longest ping gap after r1 was killed: {gap:.2f} s")
        assert gap <= 3.0, (gap, client.status())
        assert via(exits, pc) == b64url(p2)  # e follows c's packets onto r2
        # the end-to-end session survived the move: e answered no new handshake
        assert exits.status()["counters"].get("responses_sent", 0) == handshakes
        forwarded = relays["twr2"].status()["relay"]["counters"]["forwarded"]
        assert forwarded > 30


def test_the_pair_rate_paces_a_download_and_receipts_still_match() -> None:
    """pair_rate = "20 Mbit/s": a 10 MB HTTP download from the internet through the relay
    and e's exit role, with receipts on. The relay queues what the rate cannot pay for
    yet (drops only when its pair's 50 ms queue is full), so what e sent is what c got
    within the receipts' tolerance: c signs every invoice and refuses none (a policer's
    drops made c refuse one as over-billed: 8.4 MB billed, 7.0 MB counted). What the
    queue still drops, e billed and c never got; e's transport counters show it to c,
    which allows for it (a run that dropped more than the slack stalled here, refused)."""
    import time

    with Lab("relayrate") as lab:
        x = build(lab, cap="unlimited", rate="20 Mbit/s")
        c, relay = x["hosts"]["c"], x["nodes"]["r"]
        client, provider = x["nodes"]["c"], x["nodes"]["e"]
        lab.wait_for(lambda: ping(c, "203.0.113.2", count=1, check=False), timeout=30, what="e")
        started = time.monotonic()
        code, body = download(c, "large.txt", timeout=60)
        seconds = time.monotonic() - started
        assert code == 0 and body == MARKER * 350_000, f"curl exited {code}, {len(body)} bytes"
        mbit = len(body) * 8 / seconds / 1e6
        st = relay_status(relay)
        [pair] = st["pairs"]
        lab.wait_for(
            lambda: usage(provider)["sessions"][0]["unverified"] < 64 * 1024,
            timeout=15,
            what="the last receipt",
        )
        [served] = usage(provider)["sessions"]
        used = usage(client)["providers_used"][0]
        lost = st["drops"].get("relay_rate", 0)
        queued = st["counters"].get("queued", 0)
        print(
            f"20 Mbit/s pair rate: {mbit:.1f} Mbit/s of HTTP; queued {queued} "
            f"of {pair['frames']} frames, dropped {lost}; e billed {served['verified_down']} "
            f"bytes down, c counted {used['received']} (and {used['lost_down']} lost on the "
            f"way) and signed {used['signed_down']}"
        )
        # paced: never above the rate, and TCP keeps a good part of it (10.0-17.9 Mbit/s
        # in 7 runs on an idle host; 8.7 and 10.7 on a loaded one, where three Python
        # nodes share 2 cores)
        assert 7 <= mbit <= 21, mbit
        assert queued > 0, st  # the rate held frames back...
        # ...and dropped only on overflow: fewer than a policer's 10-17%, mostly the slow
        # start's overshoot, a cost per connection that the receipts' 1 MiB slack covers
        assert lost <= pair["frames"] * 0.1, st
        assert used["refused"] is None, used
        assert served["verified_down"] >= len(body)  # the whole download is receipted
        # what the relay dropped is what e billed and c never got: e's transport counters
        # show it to c, so c's count plus that loss is e's bill (c allows for it)
        explained = used["received"] + used["lost_down"]
        assert abs(served["verified_down"] - explained) <= 0.01 * len(body), (served, used)


@pytest.mark.parametrize("by_record", [False, True], ids=["configured", "by_record"])
def test_a_paid_relay_keeps_receipts_matching_what_it_relayed(by_record: bool) -> None:
    """r requires receipts ([relay] require_receipts): c (its relay peer marked `provider
    = true`, or told by r's node record, which says `rprice`) pings and downloads 2 MB
    through r and e's exit role. r invoices c for the
    relay frames of the pair c-e, both directions, and c signs them against its own count
    of the frames on its link with r; the receipts in r's ledger cover what r relayed
    within 64 KiB (the last invoice's worth of probes and keepalives still in flight,
    and what crossed before c's hello opened the session), and c refused nothing."""
    with Lab("relaypay") as lab:
        x = build(
            lab, cap="unlimited", relay_paid="invoice_interval = 0.5\n", pay_by_record=by_record
        )
        c, relay, client = x["hosts"]["c"], x["nodes"]["r"], x["nodes"]["c"]
        pc, pr, _ = x["keys"]
        if by_record:
            lab.wait_for(
                lambda: "asks for receipts (250000 per GiB): paying it" in client.proc.log(),
                timeout=20,
                what="c to learn from r's record that r wants receipts",
            )
        lab.wait_for(lambda: ping(c, "203.0.113.2", count=1, check=False), timeout=30, what="e")
        code, body = download(c, "small.txt", timeout=60)
        assert code == 0 and body == MARKER * 70_000, f"curl exited {code}, {len(body)} bytes"

        def receipted() -> int:
            [s] = usage(relay)["sessions"]
            return int(s["verified_up"] + s["verified_down"])

        def relayed() -> int:
            [pair] = relay_status(relay)["pairs"]
            return int(pair["bytes"])

        lab.wait_for(
            lambda: relayed() - receipted() < 64 * 1024, timeout=15, what="r's last receipt"
        )
        [session] = usage(relay)["sessions"]
        assert session["client"] == pc and session["state"] == "active", session
        [pair] = relay_status(relay)["pairs"]
        assert pair["payer"] == pc and pair["drops"] == {}, pair
        # probes and keepalives still cross r, so each side is read after the one before:
        # c signs before r commits, so c's signature is never behind r's ledger
        rec = receipted()
        paid = {u["provider"]: u for u in usage(client)["providers_used"]}[pr]
        assert paid["refused"] is None and paid["receipts"] > 0, paid
        signed = paid["signed_up"] + paid["signed_down"]
        counted = paid["sent"] + paid["received"]
        print(
            f"r relayed {pair['bytes']} bytes for c; receipted {rec} in "
            f"{paid['receipts']} receipts; c counted {counted}, signed {signed}"
        )
        assert rec <= relayed() and pair["bytes"] - rec < 64 * 1024
        assert pair["bytes"] > len(body)  # the download crossed r
        assert 0 <= signed - rec < 64 * 1024 and signed <= counted
        assert relay_status(relay)["drops"].get("relay_unpaid", 0) == 0


UNPAID = "credit_window = 65536\ninvoice_bytes = 8192\ncutoff = 2.0\n"  # r's [accounting]


def build_unpaid(lab: Lab, misbehave: tuple[str, ...]) -> tuple[Host, Node, str, Any]:
    """The paid relay with a small window and a quick cut-off, e without its exit role,
    and a client that cheats as `misbehave` says, pinging e with 1,000 bytes every 50 ms:
    (c, r's node, c's key, the ping)."""
    x = build(lab, cap="unlimited", receipts=False, relay_paid=UNPAID, client_misbehave=misbehave)
    c = x["hosts"]["c"]
    lab.wait_for(lambda: ping(c, "10.99.0.1", count=1, check=False), timeout=30, what="e")
    pinger = c.spawn(
        ["ping", "-D", "-n", "-i", "0.05", "-s", "1000", "-W", "1", "10.99.0.1"], name="ping"
    )
    return c, x["nodes"]["r"], x["keys"][0], pinger


def test_a_client_that_does_not_pay_the_relay_is_cut_off() -> None:
    """The same relay, and a client that says hello but never signs (tools/misbehave.py
    silent): r holds it to its credit window (64 KiB here), then drops its frames
    (`relay_unpaid`) and cuts its link after `cutoff` (2 s); its pings stop."""
    with Lab("relayunpaid") as lab:
        _, relay, pc, pinger = build_unpaid(lab, ("silent",))
        lab.wait_for(
            lambda: relay_status(relay)["drops"].get("relay_unpaid", 0) > 20,
            timeout=30,
            what="r to drop c's unpaid frames",
        )
        lab.wait_for(lambda: "cut off" in relay.proc.log(), timeout=10, what="r to cut c off")
        answered = len(replies(pinger))
        st = relay_status(relay)
        [pair] = st["pairs"]
        print(
            f"unpaid: r relayed {pair['bytes']} bytes for c, then dropped "
            f"{st['drops']['relay_unpaid']} frames; {answered} pings answered"
        )
        assert pair["payer"] == pc and pair["drops"]["unpaid"] == st["drops"]["relay_unpaid"]
        assert pair["bytes"] <= 65536 + 8192 + 2 * 1500, pair  # the window, then nothing
        assert relay.status()["drops"]["relay_unpaid"] >= pair["drops"]["unpaid"]
        [session] = usage(relay)["sessions"]
        assert session["client"] == pc and session["verified_up"] + session["verified_down"] == 0
        import time

        time.sleep(2)  # two more seconds of pings every 50 ms: not one answered
        assert len(replies(pinger)) == answered


def test_a_client_cut_off_by_the_relay_resumes_when_it_pays() -> None:
    """A client that signs nothing for its first 8 s (tools/misbehave.py pause), then pays:
    r drops its frames past the window and cuts its link, and once c signs the invoice
    that covers what it owes (after a new handshake with r: the cut erased r's keys),
    its pings are answered again and r's ledger holds the receipt."""
    import time

    with Lab("relayresume") as lab:
        _, relay, pc, pinger = build_unpaid(lab, ("pause", "8"))
        lab.wait_for(lambda: "cut off" in relay.proc.log(), timeout=15, what="r to cut c off")
        cut_at = time.time()
        unpaid = relay_status(relay)["drops"]["relay_unpaid"]
        assert unpaid > 0
        lab.wait_for(
            lambda: len([t for t in replies(pinger) if t > cut_at + 1]) >= 20,
            timeout=45,
            what="c's pings through r again once it pays",
        )
        resumed = min(t for t in replies(pinger) if t > cut_at + 1)
        # the pings stopped while c did not pay: at least the cut-off's 2 s without a reply
        gap = longest_gap(replies(pinger), min(replies(pinger)), resumed)
        [session] = usage(relay)["sessions"]
        print(
            f"resume: r dropped {unpaid} unpaid frames, no ping answered for {gap:.1f} s, "
            f"c cut off, relayed again {resumed - cut_at:.1f} s after the cut; receipted "
            f"{session['verified_up']} up / {session['verified_down']} down"
        )
        assert gap >= 2.0, gap
        assert session["client"] == pc and session["verified_up"] + session["verified_down"] > 0
