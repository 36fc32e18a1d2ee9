"""The CLI: key commands in wg's format, one-sentence errors, exit statuses."""

import io
import os
import stat
from pathlib import Path

import pytest

from tidewire.cli.env import Environment
from tidewire.cli.main import main
from tidewire.protocol.keys import decode_key, derive_public


def run(argv: list[str], stdin: str = "") -> tuple[int, str, str]:
    env = Environment(stdin=io.StringIO(stdin), stdout=io.StringIO(), stderr=io.StringIO())
    try:
        code = main(argv, env)
    except SystemExit as exc:  # argparse's own exits (usage errors, --help)
        code = int(exc.code or 0)
    return code, env.stdout.getvalue(), env.stderr.getvalue()  # type: ignore[attr-defined]


def test_genkey_pubkey_genpsk() -> None:
    code, out, _ = run(["genkey"])
    assert code == 0 and len(out.strip()) == 44
    private = decode_key(out, field="genkey")
    code, pub, _ = run(["pubkey"], stdin=out)
    assert code == 0 and decode_key(pub, field="pubkey") == derive_public(private)
    code, psk, _ = run(["genpsk"])
    assert code == 0 and len(decode_key(psk, field="psk")) == 32


def test_key_written_to_a_file_is_private(tmp_path: Path) -> None:
    target = tmp_path / "k"
    assert run(["genkey", "-o", str(target)])[0] == 0
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert len(target.read_text().strip()) == 44


def test_pubkey_with_garbage_is_one_sentence() -> None:
    code, out, err = run(["pubkey"], stdin="not a key\n")
    assert code == 1 and out == ""
    assert (
        err.startswith("tidewire: private key on stdin: a key is 44 characters")
        and err.count("\n") == 1
    )


def test_status_without_a_daemon(tmp_path: Path) -> None:
    code, _, err = run(["status", "--socket", str(tmp_path / "none.sock")])
    assert code == 1 and "no daemon at" in err


def test_up_with_a_bad_config_names_file_and_line(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[interface]\nprivate_key = "short"\n')
    code, _, err = run(["up", str(cfg)])
    assert code == 1
    assert f"{cfg}:2: [interface] private_key: a key is 44 characters" in err


@pytest.mark.parametrize("argv", [["frobnicate"], ["peer"], ["peer", "add"], ["genkey", "--bogus"]])
def test_bad_arguments_exit_2(argv: list[str]) -> None:
    code, _, _ = run(argv)
    assert code == 2


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("ten", "'ten' is not a whole number of milliseconds"),
        ("-1", "-1 is out of range (0 to 1000 milliseconds)"),
        ("5000", "5000 is out of range (0 to 1000 milliseconds)"),
    ],
)
def test_up_with_a_bad_tick_is_a_usage_error(value: str, says: str) -> None:
    code, _, err = run(["up", "node.toml", "--tick-ms", value])
    assert code == 2
    assert f"argument --tick-ms: {says}" in err and err.count("\n") == 1
