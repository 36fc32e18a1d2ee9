"""`tidewire up` re-executes itself in a lean interpreter (cli/main.py `run`): -OO drops
docstrings and asserts, about 1.6 MB of a daemon's resident memory (BENCHMARKS.md,
"Memory"); other commands, an already lean interpreter and TIDEWIRE_OPTIMIZE=0 do not."""

import os
import subprocess
import sys

import pytest

from tidewire.cli import main as cli_main


class Exec(Exception):
    pass


@pytest.fixture
def execs(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []

    def execv(path: str, args: list[str]) -> None:
        calls.append([path, *args])
        raise Exec

    monkeypatch.setattr(os, "execv", execv)
    monkeypatch.setattr(cli_main, "main", lambda argv: 0)
    monkeypatch.delenv("TIDEWIRE_OPTIMIZE", raising=False)
    return calls


def test_up_is_re_executed_lean_with_its_arguments(execs: list[list[str]]) -> None:
    with pytest.raises(Exec):
        cli_main.run(["up", "/etc/tidewire/tw0.toml", "--exit"])
    [[path, exe, *args]] = execs
    assert path == exe == sys.executable
    assert args[:3] == ["-OO", "-P", "-c"]
    assert args[4:] == ["up", "/etc/tidewire/tw0.toml", "--exit"]


def test_other_commands_and_the_opt_out_run_in_place(
    execs: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli_main.run(["status", "tw0"]) == 0
    assert cli_main.run([]) == 0
    monkeypatch.setenv("TIDEWIRE_OPTIMIZE", "0")
    assert cli_main.run(["up", "tw0.toml"]) == 0
    assert execs == []


def test_the_lean_interpreter_runs_main_with_the_arguments() -> None:
    """The code `run` hands the lean interpreter: main with sys.argv[1:], under -OO."""
    code = cli_main.LEAN[-1].replace("sys.exit(main())", "print(sys.flags.optimize, sys.argv[1:])")
    out = subprocess.run(
        [sys.executable, *cli_main.LEAN[:-1], code, "up", "x.toml"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert out.stdout.split(None, 1) == ["2", "['up', 'x.toml']\n"]
