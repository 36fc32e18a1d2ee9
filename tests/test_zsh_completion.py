"""The generated zsh completion (cli/share/_tidewire) in a real zsh: the file parses
(`zsh -n`), compinit autoloads it from fpath, and Tab in an interactive zsh run under
zpty offers the subcommands, a group's subcommands and a command's options. A wrapper
around the `compadd` builtin prints what each call adds, and the Tab key's widget
prints a marker once completion is over, so the test reads exactly the candidates (the
markers are quoted apart in the commands, whose echo must not match them).
zsh comes from Debian (scripts/setup installs it)."""

import shutil
import subprocess
from pathlib import Path

import pytest

from tidewire.cli import docs
from tidewire.cli.main import build_parser

ZSH = shutil.which("zsh")
pytestmark = pytest.mark.skipif(ZSH is None, reason="no zsh: scripts/setup installs it")

# zsh -f capture.zsh FPATH_DIR LINE: type LINE and Tab in an interactive zsh; print what
# compadd was given, one candidate a line between <hits> and </hits>, then <done>
CAPTURE = r"""
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "PS1=''; fpath=($1 \$fpath); autoload -Uz compinit; compinit -u -D"
zpty -w z "compadd () {"
zpty -w z "  builtin compadd -O __hits \"\$@\""
zpty -w z "  print -rl -- '<hits>' \$__hits '</hits>' >/dev/tty"
zpty -w z "  builtin compadd \"\$@\""
zpty -w z "}"
zpty -w z "tw-tab () { zle complete-word; print -r -- '<do''ne>' >/dev/tty }"
zpty -w z "zle -N tw-tab; bindkey '^I' tw-tab"
zpty -w z "print REA''DY"
zpty -r z line '*READY*'
zpty -w -n z "$2"$'\t'
zpty -r z out '*<done>*'
print -r -- "$out"
zpty -d z
"""


def complete(tmp_path: Path, line: str) -> set[str]:
    """What Tab offers after `line`."""
    script = tmp_path / "capture.zsh"
    script.write_text(CAPTURE)
    assert ZSH is not None
    out = subprocess.run(
        [ZSH, "-f", str(script), str(docs.SHARE), line],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.replace("\r", "")
    assert "<done>" in out, f"completion of {line!r} did not finish: {out!r}"
    hits: set[str] = set()
    inside = False
    for word in out.split("\n"):
        if word.endswith("<hits>"):
            inside = True
        elif word == "</hits>":
            inside = False
        elif inside:
            hits.add(word)
    return hits


def test_the_completion_file_parses_and_defines_the_function() -> None:
    assert ZSH is not None
    path = docs.SHARE / "_tidewire"
    subprocess.run([ZSH, "-n", str(path)], check=True, timeout=30)
    script = f"fpath=({docs.SHARE} $fpath); autoload -Uz _tidewire; functions _tidewire"
    shown = subprocess.run(
        [ZSH, "-f", "-c", script], capture_output=True, text=True, timeout=30, check=True
    )
    assert shown.stdout.startswith("_tidewire () {") and not shown.stderr


def test_tab_after_tidewire_lists_every_subcommand(tmp_path: Path) -> None:
    commands = {w for w in docs._tree(build_parser())[""] if not w.startswith("-")}
    assert {"up", "down", "reload", "peer", "client", "status"} <= commands
    assert complete(tmp_path, "tidewire ") == commands


def test_tab_after_a_group_lists_its_subcommands(tmp_path: Path) -> None:
    assert complete(tmp_path, "tidewire peer ") == {"add", "remove"}
    assert complete(tmp_path, "tidewire client ") == {"add", "list", "remove"}


def test_tab_after_a_command_offers_its_options(tmp_path: Path) -> None:
    assert {"--output", "--json"} <= complete(tmp_path, "tidewire genkey --")
    assert "--endpoint" in complete(tmp_path, "tidewire peer add tw0 --e")
