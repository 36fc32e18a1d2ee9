"""QR codes of client configs, for the WireGuard phone apps' "scan from QR code".

segno makes the symbol (pure Python, no dependencies, its own PNG writer: no Pillow);
this module draws it in a terminal with Unicode half blocks, two module rows per text
line: "▀" is a light module above a dark one, "▄" the reverse, "█" two light, " " two
dark. Light modules are the drawn ones, for the usual light-on-dark terminal, with a
quiet zone of BORDER light modules around the symbol.
"""

from typing import Any

BORDER = 2  # modules of quiet zone; scanners in the WireGuard apps read 2 fine
ERROR_LEVEL = "m"  # 15% of the symbol may be lost: a config is about 300 bytes, version 10
_CHARS = {(True, True): "█", (True, False): "▀", (False, True): "▄", (False, False): " "}


def make(text: str) -> Any:
    import segno

    return segno.make_qr(text, error=ERROR_LEVEL, boost_error=False)


def light_matrix(qr: Any, border: int = BORDER) -> list[list[bool]]:
    """The symbol with its quiet zone, True for a light module."""
    return [[not dark for dark in row] for row in qr.matrix_iter(scale=1, border=border)]


def terminal(text: str) -> str:
    """The QR code of `text` as lines of half blocks (a trailing newline)."""
    rows = light_matrix(make(text))
    if len(rows) % 2:
        rows.append([True] * len(rows[0]))  # the quiet zone goes on below
    lines = []
    for top, bottom in zip(rows[::2], rows[1::2], strict=True):
        lines.append("".join(_CHARS[pair] for pair in zip(top, bottom, strict=True)))
    return "\n".join(lines) + "\n"


def png(text: str, *, scale: int = 8) -> bytes:
    """The QR code of `text` as a PNG, `scale` pixels a module, 4 modules of quiet zone."""
    import io

    out = io.BytesIO()
    make(text).save(out, kind="png", scale=scale, border=4)
    return out.getvalue()
