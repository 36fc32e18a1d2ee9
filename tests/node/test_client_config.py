"""`tidewire client add|remove` edit the operator's config file in place: comments and
layout stay, the edit is atomic, a second client gets the next address, and remove
takes out exactly what add put in. `up NAME` finds its file as wg-quick does."""

import base64
import io
import os
from pathlib import Path

import pytest

from tidewire.cli.client_profile import NoFreeAddress, next_free
from tidewire.cli.env import Environment
from tidewire.cli.main import main
from tidewire.node.config import ConfigError, load
from tidewire.node.config.edit import (
    EditError,
    add_client,
    find_clients,
    remove_client,
    replace_file,
)
from tidewire.node.config.locate import find_config
from tidewire.protocol.link.profile import Mode

KEY = base64.b64encode(bytes(range(32))).decode()
PHONE = base64.b64encode(bytes(range(2, 34))).decode()
LAPTOP = base64.b64encode(bytes(range(3, 35))).decode()

TOML = f"""# the provider in the hall cupboard
[interface]
name = "tw0"
private_key = "{KEY}"   # kept inline for the test
address = ["10.99.0.1/24", "fd99::1/64"]

[[peer]]  # the office
public_key = "{base64.b64encode(bytes(range(1, 33))).decode()}"
allowed_ips = ["10.99.0.2/32"]

[exit]
enabled = true
[client]
endpoint = "vpn.example.net:51820"
dns = ["9.9.9.9"]
"""

WG = f"""[Interface]
# hand-written
PrivateKey = {KEY}
Address = 10.99.0.1/24
"""


def _add(text: str, fmt: str, path: Path, name: str, key: str, ips: list[str]) -> str:
    return add_client(text, fmt, path=path, name=name, public_key=key, allowed_ips=ips)


@pytest.mark.parametrize(
    ("fmt", "text", "suffix"), [("toml", TOML, "toml"), ("wg-quick", WG, "conf")]
)
def test_add_keeps_the_file_and_remove_takes_out_exactly_what_add_put_in(
    tmp_path: Path, fmt: str, text: str, suffix: str
) -> None:
    path = tmp_path / f"tw0.{suffix}"
    added = _add(text, fmt, path, "phone", PHONE, ["10.99.0.3/32"])
    assert added.startswith(text)  # every comment and line of the operator's, unchanged
    assert "# tidewire client: phone\n" in added
    path.write_text(added)
    cfg = load(path)
    phone = cfg.peers[-1]
    assert base64.b64encode(phone.public_key).decode() == PHONE
    assert [str(n) for n in phone.allowed_ips] == ["10.99.0.3/32"]
    assert phone.mode is Mode.WIREGUARD
    [entry] = find_clients(added, fmt, path=path)
    assert (entry.name, entry.public_key, entry.allowed_ips) == ("phone", PHONE, ("10.99.0.3/32",))

    both = _add(added, fmt, path, "laptop", LAPTOP, ["10.99.0.4/32"])
    without_phone, gone = remove_client(both, fmt, path=path, name="phone")
    assert gone.public_key == PHONE
    assert without_phone == _add(text, fmt, path, "laptop", LAPTOP, ["10.99.0.4/32"])
    assert remove_client(without_phone, fmt, path=path, name="laptop")[0] == text


def test_a_second_client_gets_the_next_free_address(tmp_path: Path) -> None:
    path = tmp_path / "tw0.toml"
    path.write_text(TOML)
    subnets = [str(a) for a in load(path).addresses]

    def taken() -> list[str]:
        return [str(n) for p in load(path).peers for n in p.allowed_ips]

    first = next_free(subnets, taken())
    assert first == ["10.99.0.3/32", "fd99::2/128"]  # .1 is the node, .2 the office
    path.write_text(_add(path.read_text(), "toml", path, "phone", PHONE, first))
    assert next_free(subnets, taken()) == ["10.99.0.4/32", "fd99::3/128"]
    # a provider's 0.0.0.0/0 holds nothing of the subnet; a /30 holds four addresses
    assert next_free(["10.0.0.1/24"], ["0.0.0.0/0", "10.0.0.0/30"]) == ["10.0.0.4/32"]
    with pytest.raises(NoFreeAddress, match=r"10\.0\.0\.0/30"):
        next_free(["10.0.0.1/30"], ["10.0.0.2/32"])


def test_a_hand_edited_client_is_refused_not_guessed_at(tmp_path: Path) -> None:
    path = tmp_path / "tw0.toml"
    added = _add(TOML, "toml", path, "phone", PHONE, ["10.99.0.3/32"])
    edited = added.replace('mode = "wireguard"\n', 'mode = "wireguard"\npersistent_keepalive = 5\n')
    with pytest.raises(EditError, match=r"tw0.toml:\d+: client 'phone' has a line"):
        remove_client(edited, "toml", path=path, name="phone")
    with pytest.raises(EditError, match="already there"):
        _add(added, "toml", path, "phone", LAPTOP, ["10.99.0.4/32"])
    with pytest.raises(EditError, match="not a client name"):
        _add(TOML, "toml", path, "my phone\n[exit]", PHONE, ["10.99.0.4/32"])
    with pytest.raises(EditError, match="no client named 'tablet'"):
        remove_client(added, "toml", path=path, name="tablet")


def test_replace_file_is_atomic_keeps_the_mode_and_refuses_a_file_that_changed(
    tmp_path: Path,
) -> None:
    real = tmp_path / "etc" / "tw0.toml"
    real.parent.mkdir()
    real.write_text(TOML)
    real.chmod(0o640)
    link = tmp_path / "tw0.toml"
    link.symlink_to(real)
    old = link.read_bytes()
    new = _add(TOML, "toml", link, "phone", PHONE, ["10.99.0.3/32"])
    inode = os.stat(real).st_ino
    replace_file(link, old, new)
    assert link.is_symlink() and real.read_text() == new  # the target edited, the link kept
    assert os.stat(real).st_ino != inode  # a new file renamed over: never half-written
    assert (os.stat(real).st_mode & 0o777) == 0o640
    assert sorted(p.name for p in real.parent.iterdir()) == ["tw0.toml"]  # no temp file left
    with pytest.raises(EditError, match="changed while it was being edited"):
        replace_file(link, old, TOML)
    assert real.read_text() == new


def test_client_table_loads_and_a_bad_endpoint_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "tw0.toml"
    path.write_text(TOML)
    cfg = load(path)
    assert (cfg.client.endpoint, cfg.client.dns) == ("vpn.example.net:51820", ["9.9.9.9"])
    path.write_text(TOML.replace('"vpn.example.net:51820"', '"vpn.example.net"'))
    with pytest.raises(ConfigError, match=r"tw0.toml:14: \[client\] endpoint: .*HOST:PORT"):
        load(path)


def test_up_name_looks_in_etc_tidewire_then_etc_wireguard(tmp_path: Path) -> None:
    dirs = (tmp_path / "tidewire", tmp_path / "wireguard")
    for d in dirs:
        d.mkdir()
    (dirs[1] / "wg0.conf").write_text(WG)
    assert find_config("wg0", dirs) == dirs[1] / "wg0.conf"
    (dirs[0] / "wg0.toml").write_text(TOML)
    assert find_config("wg0", dirs) == dirs[0] / "wg0.toml"
    assert find_config("./wg0", dirs) == Path("./wg0")  # a path stays a path
    assert find_config("wg0.conf", dirs) == Path("wg0.conf")
    err = io.StringIO()
    env = Environment(stdout=io.StringIO(), stderr=err, config_dirs=dirs)
    assert main(["up", "wg9"], env) == 1
    assert str(dirs[0] / "wg9.toml") in err.getvalue()
    assert str(dirs[1] / "wg9.conf") in err.getvalue()
    assert "Traceback" not in err.getvalue()
