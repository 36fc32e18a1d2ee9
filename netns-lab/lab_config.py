"""tidewire configs and keys for lab nodes: `tidewire_toml` writes a node's TOML with
its control socket and state in the lab's folder, `genkey` makes a key pair through
tidewire's own code. lab.py re-exports both."""

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lab import Lab


def tidewire_toml(
    *,
    name: str,
    private_key: str,
    address: list[str],
    lab: "Lab",
    listen_port: int | None = None,
    listen: list[str] | None = None,
    peers: Sequence[dict[str, Any]] = (),
    exit: dict[str, Any] | None = None,
    accounting: dict[str, Any] | None = None,
    share: dict[str, Any] | None = None,
    discovery: dict[str, Any] | None = None,
    mtu: int = 1420,
) -> str:
    """A tidewire TOML config whose control socket and state live in the lab's folder."""
    lines = [
        "[interface]",
        f'name = "{name}"',
        f'private_key = "{private_key}"',
        f"address = {list(address)!r}".replace("'", '"'),
        f"mtu = {mtu}",
        f'control_socket = "{lab.tmp / (name + ".sock")}"',
        f'state_dir = "{lab.tmp / "state"}"',
    ]
    if listen_port is not None:
        lines.append(f"listen_port = {listen_port}")
    if listen is not None:
        lines.append(f"listen = {toml_value(listen)}")
    for p in peers:
        lines.append("\n[[peer]]")
        for k, v in p.items():
            lines.append(f"{k} = {toml_value(v)}")
    tables = (
        ("exit", exit),
        ("accounting", accounting),
        ("share", share),
        ("discovery", discovery),
    )
    for table, values in tables:
        if values is not None:
            lines.append(f"\n[{table}]")
            lines += [f"{k} = {toml_value(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return '"' + str(v) + '"'


def genkey() -> tuple[str, str]:
    """(private, public) in wg's base64 format, from tidewire's own CLI code path."""
    import base64

    from tidewire.protocol.keys import derive_public, private_from_seed

    priv = private_from_seed(os.urandom(32))
    return base64.b64encode(priv).decode(), base64.b64encode(derive_public(priv)).decode()
