"""Reading one table of a TOML config: where a key sits and the errors that name it.

tomllib keeps no positions, so `toml_line` finds a key's line in the text again;
`toml_err` builds a table's `Err`, which raises a ConfigError with the file, that
line and "[table] key". The plain value checks every table shares sit here too.
"""

import re
from pathlib import Path
from typing import Any, NoReturn

from . import ConfigError
from .fields import Err


def toml_line(text: str, table: str, index: int, key: str | None) -> int | None:
    """The line of `key` in the `index`-th `[table]`/`[[table]]` (tomllib keeps no positions)."""
    lines = text.splitlines()
    header = re.compile(r"^\s*\[\[?\s*" + re.escape(table) + r"\s*\]\]?\s*(#.*)?$")
    any_header = re.compile(r"^\s*\[")
    count, start = -1, None
    for n, line in enumerate(lines, 1):
        if header.match(line):
            count += 1
            if count == index:
                start = n
                break
    if start is None:
        return None
    if key is None:
        return start
    keyline = re.compile(r"^\s*" + re.escape(key) + r"\s*=")
    for n in range(start + 1, len(lines) + 1):
        if any_header.match(lines[n - 1]):
            break
        if keyline.match(lines[n - 1]):
            return n
    return start


def toml_err(path: Path, text: str, table: str, index: int) -> Err:
    label = f"[{table}]" if table != "peer" else f"[[peer]] #{index + 1}"

    def err(key: str, message: str) -> NoReturn:
        raise ConfigError(path, toml_line(text, table, index, key), f"{label} {key}", message)

    return err


def str_list(value: Any, err: Err, key: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        err(key, "must be a list of strings")
    return list(value)


def boolean(value: Any, err: Err, key: str) -> bool:
    if not isinstance(value, bool):
        err(key, "must be true or false")
    return value


def unknown(table: dict[str, Any], known: set[str], err: Err) -> None:
    for k in table:
        if k not in known:
            err(k, f"unknown key (known: {', '.join(sorted(known))})")


def file_name_err(path: Path) -> Err:
    def err(key: str, message: str) -> NoReturn:
        raise ConfigError(path, None, "interface name (the file name)", message)

    return err
