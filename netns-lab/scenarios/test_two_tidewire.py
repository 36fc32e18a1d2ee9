"""Two tidewire nodes (native mode) over a veth pair:

[a] 192.168.241.1 / fd00:241::1 ---- veth ---- 192.168.241.2 / fd00:241::2 [b]
    tunnel 10.77.0.1 / fd77::1                  tunnel 10.77.0.2 / fd77::2
"""

import pytest
from common import handshaken, ping, transfer, unreachable
from lab import TIDEWIRE, Lab, genkey, tidewire_toml


def build(lab: Lab, outer: str):  # type: ignore[no-untyped-def]
    a, b = lab.host("a"), lab.host("b")
    lab.link(a, b, ["192.168.241.1/24", "fd00:241::1/64"], ["192.168.241.2/24", "fd00:241::2/64"])
    endpoint = "192.168.241.2:51821" if outer == "v4" else "[fd00:241::2]:51821"
    na, nb = lab.tidewire_pair(
        a,
        b,
        endpoint=endpoint,
        tunnel_a=["10.77.0.1/24", "fd77::1/64"],
        tunnel_b=["10.77.0.2/24", "fd77::2/64"],
    )
    return a, b, na, nb


@pytest.mark.parametrize("outer", ["v4", "v6"])
def test_ping_both_ways_v4_and_v6_inside(outer: str) -> None:
    with Lab("two") as lab:
        a, b, na, nb = build(lab, outer)
        ping(a, "10.77.0.2")
        ping(b, "10.77.0.1")
        ping(a, "fd77::2")
        ping(b, "fd77::1")
        assert handshaken(na) and handshaken(nb)
        peer_b = na.status()["peers"][0]
        assert peer_b["mode"] == "native" and peer_b["rx_bytes"] > 0 and peer_b["tx_bytes"] > 0
        expected = "192.168.241.1:51820" if outer == "v4" else "[fd00:241::1]:51820"
        assert nb.status()["peers"][0]["endpoint"] == expected


def test_100_megabytes_over_tcp_arrive_intact() -> None:
    with Lab("bulk") as lab:
        a, b, na, nb = build(lab, "v4")
        ping(a, "10.77.0.2")
        transfer(lab, a, b, "10.77.0.2", 100 * 1024 * 1024)
        transfer(lab, b, a, "fd77::1", 20 * 1024 * 1024, port=5002)
        assert na.proc.alive() and nb.proc.alive()


def test_down_removes_the_interface_and_a_second_daemon_is_refused() -> None:
    with Lab("life") as lab:
        a, _b, na, _nb = build(lab, "v4")
        second = a.run([TIDEWIRE, "up", str(na.config)], check=False, timeout=30)
        assert second.returncode == 1
        assert "already running" in second.stderr
        assert "twa" in a.run("ip -br link").stdout
        na.cli("down")
        lab.wait_for(lambda: not na.proc.alive(), timeout=10, what="the daemon to stop")
        assert na.proc.popen.returncode == 0
        assert "twa" not in a.run("ip -br link").stdout
        assert not na.socket.exists()


def test_peers_added_and_removed_at_runtime_and_bad_adds_change_nothing() -> None:
    with Lab("peers") as lab:
        a, b, na, nb = build(lab, "v4")
        ping(a, "10.77.0.2")
        pa = na.status()["public_key"]
        bad_key = nb.cli(
            "peer", "add", "twb", "garbage", "--allowed-ips", "10.77.0.9/32", check=False
        )
        assert bad_key.returncode == 1
        assert "public_key: a key is 44 characters" in bad_key.stderr
        new_key = genkey()[1]
        bad_ip = nb.cli(
            "peer", "add", "twb", new_key, "--allowed-ips", "10.77.0.300/32", check=False
        )
        assert bad_ip.returncode == 1 and "not an IP prefix" in bad_ip.stderr
        dup = nb.cli("peer", "add", "twb", pa, "--allowed-ips", "10.77.0.1/32", check=False)
        assert dup.returncode == 1 and "already configured" in dup.stderr
        assert [p["public_key"] for p in nb.status()["peers"]] == [pa]

        nb.cli("peer", "remove", "twb", pa)
        assert nb.status()["peers"] == []
        assert "10.77.0.1" not in b.run("ip route").stdout
        assert unreachable(a, "10.77.0.2")
        nb.cli(
            "peer",
            "add",
            "twb",
            pa,
            "--allowed-ips",
            "10.77.0.1/32,fd77::1/128",
            "--mode",
            "native",
        )
        # a still holds keys b forgot; it re-handshakes after 15 s of unanswered data
        lab.wait_for(
            lambda: ping(a, "10.77.0.2", count=1, check=False),
            timeout=40,
            what="a to handshake with b again",
        )
        assert nb.status()["peers"][0]["allowed_ips"] == ["10.77.0.1/32", "fd77::1/128"]


def test_without_cap_net_admin_the_error_is_one_sentence() -> None:
    with Lab("priv") as lab:
        a = lab.host("a")
        cfg = lab.tmp / "tw5.toml"
        cfg.write_text(tidewire_toml(name="tw5", private_key=genkey()[0], address=[], lab=lab))
        out = a.run(
            [
                "setpriv",
                "--bounding-set=-net_admin",
                "--inh-caps=-net_admin",
                TIDEWIRE,
                "up",
                str(cfg),
            ],
            check=False,
        )
        assert out.returncode == 1
        assert (
            out.stderr.strip().splitlines()[-1]
            == "tidewire: creating interface tw5 needs root (or CAP_NET_ADMIN)"
        )
