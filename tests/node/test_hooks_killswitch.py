"""The service pieces without root: hooks through real bash, the refusal of hooks from
a file others could edit, SaveConfig's edit of a wg-quick file, the kill switch's rules
and where each Table mode puts the routes."""

import base64
import os
import shutil
import subprocess
from ipaddress import ip_network
from pathlib import Path

import pytest

from tidewire.node import hooks, killswitch, netconf
from tidewire.node.config import PeerSpec, load
from tidewire.node.config.save import saved_text
from tidewire.node.config.service import Hook
from tidewire.node.errors import NodeError

A, B, C = (base64.b64encode(bytes([n]) * 32).decode() for n in (1, 2, 3))


def test_hooks_run_in_order_with_the_interface_name(tmp_path: Path) -> None:
    out = tmp_path / "out"
    commands = [
        Hook(f"echo first %i >> {out}", 3, "PostUp"),
        Hook(f"echo %i-%i >> {out}", 4, "PostUp"),
    ]
    hooks.run(commands, iface="wg7", path=tmp_path / "wg7.conf")
    assert out.read_text() == "first wg7\nwg7-wg7\n"


def test_a_failing_hook_names_file_and_line_and_stops_the_rest(tmp_path: Path) -> None:
    out = tmp_path / "out"
    commands = [Hook("echo oops >&2; exit 3", 5, "[Interface] PreUp"), Hook(f"touch {out}", 6, "x")]
    with pytest.raises(NodeError) as err:
        hooks.run(commands, iface="wg7", path=Path("/etc/wireguard/wg7.conf"))
    assert str(err.value) == (
        "/etc/wireguard/wg7.conf:5: [Interface] PreUp: `echo oops >&2; exit 3` failed"
        " (exit status 3): oops"
    )
    assert not out.exists()
    hooks.run(commands, iface="wg7", path=Path("x.conf"), check=False)  # a down hook: go on
    assert out.exists()


def test_a_missing_command_is_said_as_such(tmp_path: Path) -> None:
    with pytest.raises(NodeError) as err:
        hooks.run(
            [Hook("true && tidewire-no-such-tool %i", 9, "[Interface] PostUp")],
            iface="wg7",
            path=Path("wg7.conf"),
        )
    assert str(err.value) == (
        "wg7.conf:9: [Interface] PostUp: command not found: 'tidewire-no-such-tool'"
        " (in `true && tidewire-no-such-tool wg7`)"
    )


def test_hooks_are_refused_from_a_file_others_can_change(tmp_path: Path) -> None:
    conf = tmp_path / "wg0.conf"
    conf.write_text("[Interface]\n")
    os.chmod(tmp_path, 0o755)
    os.chmod(conf, 0o600)
    assert hooks.refusal(conf) is None
    os.chmod(conf, 0o620)
    assert "writable by group or others" in str(hooks.refusal(conf))
    os.chmod(conf, 0o600)
    assert "owned by uid" in str(hooks.refusal(conf, uid=os.geteuid() + 1))
    os.chmod(tmp_path, 0o777)
    assert "folder" in str(hooks.refusal(conf))
    os.chmod(tmp_path, 0o1777)  # like /tmp: others cannot replace our file
    assert hooks.refusal(conf) is None
    os.chmod(tmp_path, 0o755)


FILE = f"""# the office tunnel
[Interface]
PrivateKey = {A}
SaveConfig = true

# the office
[Peer]
PublicKey = {B}
AllowedIPs = 10.0.0.2/32  # the office's router
Endpoint = office.example:51820

# tidewire client: phone
[Peer]
PublicKey = {C}
AllowedIPs = 10.0.0.3/32
"""


def spec(key: str, *nets: str, keepalive: int = 0) -> PeerSpec:
    allowed = [ip_network(n) for n in nets]
    return PeerSpec(base64.b64decode(key), allowed_ips=allowed, persistent_keepalive=keepalive)


def test_save_keeps_comments_drops_removed_appends_added() -> None:
    new = spec(A, "10.0.0.9/32", "fd00::9/128", keepalive=25)
    text = saved_text(FILE, [spec(B, "10.0.0.2/32"), new])
    assert text == FILE.split("\n# tidewire client")[0] + (
        f"\n[Peer]\nPublicKey = {A}\nAllowedIPs = 10.0.0.9/32, fd00::9/128\n"
        "PersistentKeepalive = 25\n"
    )


def test_save_rewrites_only_allowed_ips_that_changed() -> None:
    same = saved_text(FILE, [spec(B, "10.0.0.2/32"), spec(C, "10.0.0.3/32")])
    assert same == FILE
    resolved = spec(B, "10.0.0.2/32", "10.1.0.0/16")
    resolved.endpoint = "203.0.113.5:51820"  # what `up` resolved office.example to
    moved = saved_text(FILE, [resolved, spec(C, "10.0.0.3/32")])
    assert "AllowedIPs = 10.0.0.2/32, 10.1.0.0/16\nEndpoint = office.example:51820\n" in moved
    assert moved.count("AllowedIPs") == 2


def test_saved_file_loads_back_with_the_running_peers(tmp_path: Path) -> None:
    path = tmp_path / "wg0.conf"
    path.write_text(saved_text(FILE, [spec(C, "10.0.0.3/32"), spec(A, "10.0.0.7/32")]))
    cfg = load(path)
    assert [base64.b64encode(p.public_key).decode() for p in cfg.peers] == [C, A]
    assert cfg.service.save_config


def test_kill_switch_rules() -> None:
    rules = killswitch.ruleset(
        "wg0",
        endpoints=[("198.51.100.1", 51820), ("2001:db8::1", 443)],
        mark=0xCA6C,
        allow_lan=False,
    )
    assert "table inet tidewire_killswitch_wg0 {" in rules
    output = rules.split("chain output")[1].split("chain forward")[0]
    assert "policy drop;" in output and output.rstrip().endswith("counter drop\n  }")
    for line in (
        'oifname "wg0" accept',
        'oifname "lo" accept',
        "meta mark 0xca6c accept",
        "ip daddr 198.51.100.1 udp dport 51820 accept",
        "ip6 daddr 2001:db8::1 udp dport 443 accept",
        "udp sport 68 udp dport 67 accept",
    ):
        assert line in output
    assert "192.168.0.0/16" not in rules
    assert "192.168.0.0/16" in killswitch.ruleset("wg0", endpoints=[], mark=1, allow_lan=True)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nft"), reason="nft -c needs root")
def test_kill_switch_rules_are_valid_nftables() -> None:
    for lan in (False, True):
        script = killswitch.ruleset(
            "wg-0", endpoints=[("10.0.0.1", 1), ("fd00::1", 2)], mark=7, allow_lan=lan
        )
        result = subprocess.run(
            ["nft", "-c", "-f", "-"], input=script, text=True, capture_output=True
        )
        assert result.returncode == 0, result.stderr


NETS = [ip_network("10.0.0.0/24"), ip_network("0.0.0.0/0")]


def test_routes_per_table_mode() -> None:
    auto = netconf.Routing.of("auto", mark=51820)
    assert auto == netconf.Routing("auto", 51820, 51820)
    assert netconf._route_commands("replace", "wg0", NETS, table=auto) == [
        "route replace 10.0.0.0/24 dev wg0",
        "route replace 0.0.0.0/0 dev wg0 table 51820",
    ]
    fixed = netconf.Routing.of(1234, mark=51820)
    assert netconf._route_commands("replace", "wg0", NETS, table=fixed) == [
        "route replace 10.0.0.0/24 dev wg0 table 1234",
        "route replace 0.0.0.0/0 dev wg0 table 1234",
    ]
    off = netconf.Routing.of("off", mark=51820)
    assert netconf._route_commands("replace", "wg0", NETS, table=off) == []


def test_down_of_a_dead_daemon_removes_its_kill_switch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fcntl
    import io

    from tidewire.cli.env import Environment
    from tidewire.cli.main import main
    from tidewire.node import firewall

    removed: list[str] = []

    def remove(iface: str) -> bool:
        removed.append(iface)
        return True

    monkeypatch.setattr(killswitch, "remove", remove)
    monkeypatch.setattr(firewall, "remove", lambda iface: False)
    monkeypatch.setattr(firewall, "remove_guard", lambda iface: None)
    monkeypatch.setattr(firewall, "recover_forwarding", lambda: False)
    sock = tmp_path / "wg7.sock"

    def down() -> tuple[int, str, str]:
        env = Environment(stdin=io.StringIO(), stdout=io.StringIO(), stderr=io.StringIO())
        code = main(["down", "wg7", "--socket", str(sock)], env)
        assert isinstance(env.stdout, io.StringIO) and isinstance(env.stderr, io.StringIO)
        return code, env.stdout.getvalue(), env.stderr.getvalue()

    lock = os.open(sock.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a live daemon holds it: down asks the daemon
        code, _, err = down()
        assert code == 1 and "no daemon at" in err and removed == []
    finally:
        os.close(lock)  # the daemon is dead now (kill -9 frees its lock)
    assert down() == (0, "wg7: removed the kill switch a stopped daemon left\n", "")
    assert removed == ["wg7"]
