"""Finding a node's config file from a bare name, as wg-quick finds /etc/wireguard/NAME.conf.

`tidewire up wg0` (a name: no slash, no .toml or .conf suffix) looks for
/etc/tidewire/wg0.toml, then /etc/wireguard/wg0.conf; anything else is a path. The
two folders are a parameter: the command line fills them from its Environment,
which tests replace.
"""

from pathlib import Path

from . import ConfigError, ifname_problem

CONFIG_DIRS = (Path("/etc/tidewire"), Path("/etc/wireguard"))


def is_bare_name(text: str) -> bool:
    """True for "wg0": no folder, no suffix, a valid interface name (wg-quick's own test)."""
    return (
        "/" not in text and not text.endswith((".toml", ".conf")) and ifname_problem(text) is None
    )


def candidates(name: str, dirs: tuple[Path, Path] = CONFIG_DIRS) -> list[Path]:
    return [dirs[0] / f"{name}.toml", dirs[1] / f"{name}.conf"]


def find_config(text: str, dirs: tuple[Path, Path] = CONFIG_DIRS) -> Path:
    """The config file meant by `text` (a path, or a bare name looked up in `dirs`).

    Raises ConfigError listing both places when a bare name is found in neither.
    """
    if not is_bare_name(text):
        return Path(text)
    places = candidates(text, dirs)
    for place in places:
        if place.is_file():
            return place
    raise ConfigError(
        text,
        None,
        "config",
        f"no config for {text!r}: neither {places[0]} nor {places[1]} exists"
        " (give a path to use another file)",
    )
