"""Adding and removing a client's peer in an operator's config file, editing it in place.

There is no writer that regenerates a file: the operator's comments and layout stay as
they are. `add_client` appends one block to the end of the text, a blank line, a
comment naming the client, and a `[[peer]]` table (TOML) or `[Peer]` section
(wg-quick) holding only the keys it writes:

    # tidewire client: phone
    [[peer]]
    public_key = "..."
    allowed_ips = ["10.99.0.4/32", "fd99::4/128"]
    mode = "wireguard"

`find_clients` reads those blocks back (a comment, then the header on the next line,
then key lines up to the first blank, comment or header line); `remove_client` takes
out exactly the lines add wrote, blank line included, so add then remove gives the
text back byte for byte. A block someone edited (a key add does not write, a value
that does not parse) is refused with the line, never guessed at.

`replace_file` writes the new text atomically (temporary file beside it, fsync,
rename, fsync of the folder), with the old file's mode and owner, and only if the
file still holds the bytes the edit started from.
"""

import os
import re
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path

MARKER = "# tidewire client: "
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}")
NAME_RULE = "1-64 letters, digits and _.@+-, starting with a letter or digit"
_KEY_LINE = re.compile(r"\s*([A-Za-z_]+)\s*=\s*(.*?)\s*")
_HEADER = {
    "toml": re.compile(r"\s*\[\[\s*peer\s*\]\]\s*"),
    "wg-quick": re.compile(r"\s*\[\s*peer\s*\]\s*", re.IGNORECASE),
}
_KEYS = {
    "toml": {"public_key": "public_key", "allowed_ips": "allowed_ips", "mode": "mode"},
    "wg-quick": {"publickey": "public_key", "allowedips": "allowed_ips"},
}


class EditError(Exception):
    """The file cannot be edited safely; one sentence naming the file and line."""


@dataclass(frozen=True)
class ClientEntry:
    name: str
    public_key: str
    allowed_ips: tuple[str, ...]
    line: int  # of the comment that names it
    start: int  # index of the first line add wrote (the blank line, if there is one)
    end: int  # index after the last


def name_problem(name: str) -> str | None:
    return None if NAME.fullmatch(name) else f"a client name is {NAME_RULE}"


def client_block(fmt: str, *, name: str, public_key: str, allowed_ips: list[str]) -> str:
    if fmt == "toml":
        ips = ", ".join(f'"{ip}"' for ip in allowed_ips)
        body = f'[[peer]]\npublic_key = "{public_key}"\nallowed_ips = [{ips}]\nmode = "wireguard"\n'
    else:
        body = f"[Peer]\nPublicKey = {public_key}\nAllowedIPs = {', '.join(allowed_ips)}\n"
    return f"{MARKER}{name}\n{body}"


def add_client(
    text: str, fmt: str, *, path: Path, name: str, public_key: str, allowed_ips: list[str]
) -> str:
    """`text` with the client's block appended; EditError if the name is taken."""
    problem = name_problem(name)
    if problem:
        raise EditError(f"{name!r} is not a client name: {problem}")
    for entry in find_clients(text, fmt, path=path):
        if entry.name == name:
            raise EditError(f"{path}:{entry.line}: a client named {name!r} is already there")
    if text and not text.endswith("\n"):
        text += "\n"
    block = client_block(fmt, name=name, public_key=public_key, allowed_ips=allowed_ips)
    return text + ("\n" if text else "") + block


def remove_client(text: str, fmt: str, *, path: Path, name: str) -> tuple[str, ClientEntry]:
    """`text` without the lines add wrote for `name`, and what they held."""
    for entry in find_clients(text, fmt, path=path):
        if entry.name == name:
            lines = text.splitlines(keepends=True)
            return "".join(lines[: entry.start] + lines[entry.end :]), entry
    raise EditError(f"{path}: no client named {name!r} (see `tidewire client list`)")


def find_clients(text: str, fmt: str, *, path: Path) -> list[ClientEntry]:
    lines = text.splitlines(keepends=True)
    entries: list[ClientEntry] = []
    for i, raw in enumerate(lines):
        if raw.startswith(MARKER):
            entry = _read_block(lines, i, fmt, path)
            if any(e.name == entry.name for e in entries):
                raise EditError(f"{path}:{i + 1}: a second client named {entry.name!r}")
            entries.append(entry)
    return entries


def _read_block(lines: list[str], i: int, fmt: str, path: Path) -> ClientEntry:
    name = lines[i][len(MARKER) :].strip()
    where = f"{path}:{i + 1}"
    if name_problem(name):
        raise EditError(f"{where}: {name!r} is not a client name ({NAME_RULE})")
    if i + 1 >= len(lines) or not _HEADER[fmt].fullmatch(lines[i + 1].rstrip("\n")):
        header = "[[peer]]" if fmt == "toml" else "[Peer]"
        raise EditError(f"{where}: the line after client {name!r} is not {header}; edit by hand")
    values: dict[str, str] = {}
    end = i + 2
    while end < len(lines):
        stripped = lines[end].strip()
        if not stripped or stripped.startswith(("#", "[")):
            break
        m = _KEY_LINE.fullmatch(lines[end].rstrip("\n"))
        known = _KEYS[fmt].get(m.group(1) if fmt == "toml" else m.group(1).lower()) if m else None
        if m is None or known is None or known in values:
            raise EditError(
                f"{path}:{end + 1}: client {name!r} has a line `tidewire client add` did not"
                " write; edit the file by hand"
            )
        values[known] = m.group(2)
        end += 1
    if "public_key" not in values:
        raise EditError(f"{where}: client {name!r} has no public key; edit the file by hand")
    public_key, ips = _values(values, fmt, f"{where}: client {name!r}")
    start = i - 1 if i > 0 and lines[i - 1] == "\n" else i
    return ClientEntry(name, public_key, ips, i + 1, start, end)


def _values(values: dict[str, str], fmt: str, where: str) -> tuple[str, tuple[str, ...]]:
    if fmt != "toml":
        ips = values.get("allowed_ips", "")
        return values["public_key"], tuple(s.strip() for s in ips.split(",") if s.strip())
    try:
        data = tomllib.loads("\n".join(f"{k} = {v}" for k, v in values.items()))
    except tomllib.TOMLDecodeError as exc:
        raise EditError(f"{where}: {exc}; edit the file by hand") from None
    key, ips = data.get("public_key"), data.get("allowed_ips", [])
    if not isinstance(key, str) or not isinstance(ips, list):
        raise EditError(f"{where}: public_key or allowed_ips is not as add wrote it")
    return key, tuple(str(ip) for ip in ips)


def replace_file(path: Path, expected: bytes, text: str) -> None:
    """Write `text` over `path` atomically, if it still holds `expected` (else EditError).

    A symbolic link is followed: its target is edited, the link stays. Blocking: call
    it off an event loop.
    """
    target = path.resolve()
    if target.read_bytes() != expected:
        raise EditError(f"{path} changed while it was being edited; run the command again")
    st = os.stat(target)
    tmp = target.with_name(f".{target.name}.tidewire-tmp")
    try:  # O_EXCL: two edits at once cannot both write
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise EditError(f"{tmp} exists: another edit is under way, or remove it") from None
    try:
        try:
            os.fchmod(fd, stat.S_IMODE(st.st_mode))
            if (st.st_uid, st.st_gid) != (os.getuid(), os.getgid()):
                os.fchown(fd, st.st_uid, st.st_gid)
            os.write(fd, text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dfd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
