"""wg-quick's SaveConfig: at a clean stop, the running peers go back into the file.

wg-quick writes the whole file anew from `wg showconf`, losing its comments. Here the
file is edited instead, so what the operator wrote stays where practical:

- the [Interface] section and everything before the first [Peer] stay as they are;
- a [Peer] section whose key still runs stays, its comments and keys too; only its
  AllowedIPs is rewritten when it changed at run time (not its Endpoint: the running
  one is the address a name resolved to, and the file's name is what the operator
  wants kept);
- a [Peer] section of a peer removed at run time goes, with the comment lines right
  above its header and one blank line before them;
- a peer added at run time (`tidewire peer add`, `client add`) is appended as a new
  [Peer] section.

The new text goes through `edit.replace_file` (temporary file, fsync, rename), with
the file's mode and owner kept.
"""

import base64
import re
from dataclasses import dataclass

from . import PeerSpec

_HEADER = re.compile(r"\s*\[\s*(\w+)\s*\]\s*(#.*)?", re.IGNORECASE)
_KEY = re.compile(r"\s*(\w+)\s*=\s*(.*?)\s*")


@dataclass
class _Block:
    start: int  # first line (a comment above the header, or the header)
    end: int  # index after the last line
    key: bytes | None  # the PublicKey, for a [Peer]
    peer: bool


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def _split(lines: list[str]) -> tuple[int, list[_Block]]:
    """Where the first [Peer] block starts, and the blocks from there on (an [Interface]
    after a [Peer] is a block too, with no key, and always kept)."""
    headers = [i for i, raw in enumerate(lines) if _HEADER.fullmatch(raw.rstrip("\n"))]
    blocks: list[_Block] = []
    for n, i in enumerate(headers):
        m = _HEADER.fullmatch(lines[i].rstrip("\n"))
        assert m is not None
        peer = m.group(1).lower() == "peer"
        if not peer and not blocks:
            continue  # the [Interface] before the first peer: part of what stays
        start = i
        while start > 0 and lines[start - 1].lstrip().startswith("#"):
            start -= 1  # the comments right above a header are its own
        if blocks:
            blocks[-1].end = start
        end = headers[n + 1] if n + 1 < len(headers) else len(lines)
        blocks.append(_Block(start, end, _peer_key(lines[i + 1 : end]), peer))
    return (blocks[0].start if blocks else len(lines)), blocks


def _peer_key(lines: list[str]) -> bytes | None:
    for raw in lines:
        m = _KEY.fullmatch(raw.split("#", 1)[0].rstrip("\n"))
        if m and m.group(1).lower() == "publickey":
            try:
                return base64.b64decode(m.group(2), validate=True)
            except ValueError:
                return None
    return None


def _values(lines: list[str], key: str) -> list[str]:
    out: list[str] = []
    for raw in lines:
        m = _KEY.fullmatch(raw.split("#", 1)[0].rstrip("\n"))
        if m and m.group(1).lower() == key:
            out += [v.strip() for v in m.group(2).split(",") if v.strip()]
    return out


def _set_key(lines: list[str], key: str, spelling: str, values: list[str]) -> list[str]:
    """The block with one `spelling = values` line where the first `key` line was (or at
    the end of its keys), and no other `key` line; unchanged if the values are the same."""
    if _values(lines, key) == values:
        return lines
    out: list[str] = []
    placed = False
    for raw in lines:
        m = _KEY.fullmatch(raw.split("#", 1)[0].rstrip("\n"))
        if m and m.group(1).lower() == key:
            if not placed and values:
                out.append(f"{spelling} = {', '.join(values)}\n")
            placed = True
            continue
        out.append(raw)
    if not placed and values:
        last = max((i for i, raw in enumerate(out) if raw.strip()), default=len(out) - 1)
        out.insert(last + 1, f"{spelling} = {', '.join(values)}\n")
    return out


def peer_section(spec: PeerSpec) -> str:
    lines = ["[Peer]", f"PublicKey = {_b64(spec.public_key)}"]
    if spec.preshared_key is not None:
        lines.append(f"PresharedKey = {_b64(spec.preshared_key)}")
    if spec.endpoint:
        lines.append(f"Endpoint = {spec.endpoint}")
    if spec.allowed_ips:
        lines.append(f"AllowedIPs = {', '.join(map(str, spec.allowed_ips))}")
    if spec.persistent_keepalive:
        lines.append(f"PersistentKeepalive = {spec.persistent_keepalive}")
    return "\n".join(lines) + "\n"


def saved_text(text: str, peers: list[PeerSpec]) -> str:
    """`text` with exactly `peers` as its [Peer] sections (see the module comment)."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    first, blocks = _split(lines)
    running = {p.public_key: p for p in peers}
    out = lines[:first]
    kept: set[bytes] = set()
    for block in blocks:
        body = lines[block.start : block.end]
        if not block.peer:
            out += body
            continue
        spec = running.get(block.key) if block.key is not None else None
        if spec is None or block.key in kept:  # removed at run time (or a duplicate)
            if out and not out[-1].strip():
                out.pop()
            continue
        kept.add(spec.public_key)
        body = _set_key(body, "allowedips", "AllowedIPs", [str(n) for n in spec.allowed_ips])
        out += body
    for spec in peers:
        if spec.public_key not in kept:
            if out and out[-1].strip():
                out.append("\n")
            out.append(peer_section(spec))
    return "".join(out)
