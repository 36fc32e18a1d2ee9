"""The QR code of a client config: the terminal's half blocks hold the whole symbol (two
module rows a line, quiet zone included), the PNG is a valid PNG of the expected size,
and both decode back to the config with zbarimg (Debian's zbar-tools; skipped without
it, since segno has no decoder)."""

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from tidewire.cli import qr
from tidewire.cli.client_profile import client_config

CONF = client_config(
    private_key="yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=",
    addresses=["10.99.0.4/32", "fd99::4/128"],
    dns=["9.9.9.9"],
    server_public_key="xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=",
    endpoint="vpn.example.net:51820",
    name="phone",
)
zbar = pytest.mark.skipif(shutil.which("zbarimg") is None, reason="zbarimg (zbar-tools) missing")


def _from_terminal(text: str) -> list[list[bool]]:
    """The light modules the half blocks draw, back as a matrix."""
    halves = {"█": (True, True), "▀": (True, False), "▄": (False, True), " ": (False, False)}
    rows: list[list[bool]] = []
    for line in text.splitlines():
        pairs = [halves[ch] for ch in line]
        rows += [[p[0] for p in pairs], [p[1] for p in pairs]]
    return rows


def _decode(tmp_path: Path, name: str, data: bytes) -> str:
    image = tmp_path / name
    image.write_bytes(data)
    out = subprocess.run(
        ["zbarimg", "-q", "--raw", "-Sbinary", str(image)],
        capture_output=True,
        timeout=30,
        check=True,
    )
    return out.stdout.decode()


def test_terminal_rendering_holds_the_symbol_with_its_quiet_zone() -> None:
    symbol = qr.make(CONF)
    size = symbol.symbol_size(border=0)[0]
    text = qr.terminal(CONF)
    lines = text.splitlines()
    width = size + 2 * qr.BORDER
    assert len(lines) == (width + 1) // 2 and all(len(line) == width for line in lines)
    rows = _from_terminal(text)[:width]
    assert rows == qr.light_matrix(symbol)
    assert all(rows[0]) and all(rows[-1]) and all(r[0] and r[-1] for r in rows)  # quiet zone
    assert not rows[qr.BORDER][qr.BORDER]  # a finder pattern's dark corner


def test_png_is_a_png_of_the_expected_size() -> None:
    data = qr.png(CONF, scale=4)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    width, height = struct.unpack(">II", data[16:24])
    expected = (qr.make(CONF).symbol_size(border=0)[0] + 8) * 4
    assert width == height == expected
    assert zlib.crc32(data[12:29]) == struct.unpack(">I", data[29:33])[0]
    assert data.endswith(b"IEND\xaeB`\x82")


@zbar
def test_png_and_terminal_decode_back_to_the_config(tmp_path: Path) -> None:
    assert _decode(tmp_path, "phone.png", qr.png(CONF)) == CONF
    rows = _from_terminal(qr.terminal(CONF))
    scale = 4
    pgm = [b"P5 %d %d 255\n" % (len(rows[0]) * scale, len(rows) * scale)]
    for row in rows:
        line = b"".join(b"\xff" * scale if light else b"\x00" * scale for light in row)
        pgm += [line] * scale
    assert _decode(tmp_path, "terminal.pgm", b"".join(pgm)) == CONF
