"""`tidewire client add` makes a config a stock WireGuard client uses as printed.

The exit lab (netns-lab/topologies.py) without its wireguard-go: the provider runs from
its config file; `client add` prints a config, wireguard-go (through wg-quick) takes it
unchanged and pings the internet through the exit; the file now holds the client, so
a restarted provider still serves it; `client remove` takes it out of both.
"""

import json

from common import ping
from lab import Lab
from topologies import build_exit_lab
from wg import wg_latest_handshake, wg_quick_down, wg_quick_up

from tidewire.node.config import load
from tidewire.protocol.keys import encode_key


def test_client_add_gives_a_config_wireguard_go_uses_through_the_exit() -> None:
    with Lab("cliadd") as lab:
        x = build_exit_lab(lab, with_wireguard_go=False)
        config = x.provider_node.config
        before = config.read_text()
        png = lab.tmp / "phone.png"
        out = x.provider_node.cli(
            "client", "add", "twexit", "phone", "--config", str(config),
            "--endpoint", "198.51.101.1:51820", "--png", str(png),
        )  # fmt: skip
        conf, qr = out.stdout.split("PersistentKeepalive = 25\n", 1)
        conf += "PersistentKeepalive = 25\n"
        assert "Address = 10.99.0.4/32, fd99::4/128" in conf  # .1 node, .2 and .3 taken
        assert "AllowedIPs = 0.0.0.0/0, ::/0" in conf and "Endpoint = 198.51.101.1:51820" in conf
        assert qr.count("\n") > 15 and set(qr) <= set("█▀▄ \n")  # a QR code in half blocks
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_mode & 0o077 == 0
        private = conf.split("PrivateKey = ", 1)[1].split("\n", 1)[0]
        assert private not in config.read_text()  # the client's key never touches the node
        assert config.read_text().startswith(before) and "# tidewire client: phone" in (
            config.read_text()
        )
        wg_path = wg_quick_up(lab, x.wgclient, "wgphone0", conf)  # the config as printed
        try:
            ping(x.wgclient, "203.0.113.2")
            ping(x.wgclient, "2001:db8:113::2")
            assert wg_latest_handshake(x.wgclient, "wgphone0") > 0
            [listed] = json.loads(
                x.provider_node.cli(
                    "client", "list", "twexit", "--config", str(config), "--json"
                ).stdout
            )
            assert listed["name"] == "phone" and listed["running"]
            assert listed["allowed_ips"] == ["10.99.0.4/32", "fd99::4/128"]
            assert listed["latest_handshake"] is not None
            public = listed["public_key"]
            assert public in {encode_key(p.public_key) for p in load(config).peers}

            # a restarted provider reads the client from its file
            x.provider_node.cli("down")
            lab.wait_for(lambda: not x.provider_node.proc.alive(), timeout=10, what="stop")
            node = lab.tidewire(x.provider, "twexit", config.read_text())
            peers = {p["public_key"]: p for p in node.status()["peers"]}
            assert peers[public]["mode"] == "wireguard"
            assert peers[public]["allowed_ips"] == ["10.99.0.4/32", "fd99::4/128"]
            lab.wait_for(
                lambda: ping(x.wgclient, "203.0.113.2", count=1, check=False),
                timeout=40,
                what="wireguard-go to handshake with the restarted provider",
            )

            node.cli("client", "remove", "twexit", "phone", "--config", str(config))
            assert public not in {p["public_key"] for p in node.status()["peers"]}
            assert config.read_text() == before  # exactly what add put in is gone
        finally:
            wg_quick_down(x.wgclient, wg_path)
