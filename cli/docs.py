"""The man page and the bash and zsh completions, generated from the argument parser.

`python -m tidewire.cli.docs write` regenerates cli/share/ (tidewire.1, tidewire.bash,
_tidewire), which is committed and shipped as package data; a test regenerates it and
compares, so it cannot go stale. `python -m tidewire.cli.docs install [--prefix DIR]`
copies the shipped files to DIR/share/man/man1, DIR/share/bash-completion/completions
and DIR/share/zsh/site-functions (default DIR: /usr/local).

Committed rather than built at install: a wheel built by setuptools has no hook to run
code, and packagers and `pip install` users get the files without running anything.
The output depends on the parser only (no date, no version), so it is reproducible.
"""

import argparse
import shutil
import sys
from pathlib import Path

SHARE = Path(__file__).resolve().parent / "share"
FILES = {"tidewire.1": "man1", "tidewire.bash": "bash", "_tidewire": "zsh"}
_FILE_ARGS = {"CONFIG", "FILE", "PATH"}


def _commands(
    parser: argparse.ArgumentParser, prefix: str = ""
) -> list[tuple[str, argparse.ArgumentParser]]:
    """Every leaf command as ("client add", its parser), in the order of --help."""
    out: list[tuple[str, argparse.ArgumentParser]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, child in action.choices.items():
                child.description = child.description or helps.get(name, "")
                out += _commands(child, f"{prefix}{name} ")
    return out or [(prefix.strip(), parser)]


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings and a.dest != "help"]


def _positionals(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not a.option_strings]


def _roff(text: str) -> str:
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text.startswith((".", "'")) else text


def man(parser: argparse.ArgumentParser) -> str:
    lines = [
        '.TH TIDEWIRE 1 "" "tidewire" "User Commands"',
        ".SH NAME",
        "tidewire \\- " + _roff((parser.description or "").split(": ", 1)[-1]),
        ".SH SYNOPSIS",
        ".B tidewire",
        "COMMAND [ARGUMENTS]",
        ".SH COMMANDS",
    ]
    for name, p in _commands(parser):
        if not name:
            continue
        args = " ".join(str(a.metavar or a.dest) for a in _positionals(p))
        lines += [".TP", f".B tidewire {_roff(name)}" + (f" {_roff(args)}" if args else "")]
        lines.append(_roff(p.description or ""))
        for a in _positionals(p):
            if a.help:
                lines += [".RS", f".IP {_roff(str(a.metavar or a.dest))}", _roff(a.help), ".RE"]
        for a in _options(p):
            flag = ", ".join(a.option_strings) + (f" {a.metavar}" if a.metavar else "")
            if a.choices and not a.metavar:
                flag += " {" + ",".join(map(str, a.choices)) + "}"
            lines += [".RS", f'.IP "{_roff(flag)}"', _roff(a.help or ""), ".RE"]
    lines += [
        ".SH FILES",
        ".TP",
        ".I /etc/tidewire/NAME.toml, /etc/wireguard/NAME.conf",
        "where \\fBtidewire up NAME\\fR and \\fBtidewire client\\fR look for a node's config.",
        ".TP",
        ".I /run/tidewire/IFACE.sock",
        "a running node's control socket.",
        ".TP",
        ".I /etc/systemd/system/tidewire@.service, /etc/init.d/tidewire",
        "the systemd unit and the OpenWrt init script \\fBtidewire service install\\fR writes.",
        ".SH EXIT STATUS",
        "0 on success, 1 on an error (one sentence on standard error), 2 for bad arguments.",
        "With \\fB\\-\\-json\\fR every command prints one JSON document on standard output,",
        'an error too: {"error": "the sentence", "exit_status": N}, with the same status.',
        ".SH SEE ALSO",
        ".BR wg (8),",
        ".BR wg\\-quick (8)",
    ]
    return "\n".join(lines) + "\n"


def _tree(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    """Command path ("", "client", "client add") -> words that may follow it."""
    tree: dict[str, list[str]] = {}

    def walk(p: argparse.ArgumentParser, path: str) -> None:
        words = [s for a in _options(p) for s in a.option_strings]
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    words.insert(0, name)
                    walk(child, f"{path} {name}".strip())
        tree[path] = sorted(set(words), key=lambda w: (w.startswith("-"), w))

    walk(parser, "")
    return tree


def _file_options(parser: argparse.ArgumentParser) -> list[str]:
    opts = {
        s
        for _, p in _commands(parser)
        for a in _options(p)
        if a.metavar in _FILE_ARGS
        for s in a.option_strings
    }
    return sorted(opts)


def bash(parser: argparse.ArgumentParser) -> str:
    cases = "\n".join(
        f'        "{path}") words="{" ".join(words)}" ;;' for path, words in _tree(parser).items()
    )
    files = "|".join(_file_options(parser))
    return f"""# bash completion for tidewire (generated by `python -m tidewire.cli.docs`)
_tidewire() {{
    local cur prev path="" i words
    COMPREPLY=()
    cur="${{COMP_WORDS[COMP_CWORD]}}"
    prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    case "$prev" in
        {files}) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    esac
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${{COMP_WORDS[i]}}" in
            -*) ;;
            *) [[ " $(_tidewire_words "$path") " == *" ${{COMP_WORDS[i]}} "* ]] &&
                path="${{path:+$path }}${{COMP_WORDS[i]}}" ;;
        esac
    done
    words="$(_tidewire_words "$path")"
    if [[ "$path" == up && "$cur" != -* ]]; then
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
    COMPREPLY+=($(compgen -W "$words" -- "$cur"))
}}
_tidewire_words() {{
    local words=""
    case "$1" in
{cases}
    esac
    echo "$words"
}}
complete -F _tidewire tidewire
"""


def _zsh_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "'\\''").replace("[", "\\[").replace("]", "\\]")


def zsh(parser: argparse.ArgumentParser) -> str:
    funcs = []
    for path, p in [("", parser), *_commands(parser)]:
        specs = []
        for a in _options(p):
            action = (
                ":file:_files"
                if a.metavar in _FILE_ARGS
                else (":value:" if a.nargs != 0 and a.metavar else "")
            )
            for s in a.option_strings:
                specs.append(f"'{s}[{_zsh_escape(a.help or '')}]{action}'")
        for a in _positionals(p):
            if a.metavar in _FILE_ARGS:
                specs.append("':config:_files'")
            else:
                specs.append(f"':{str(a.metavar or a.dest).lower()}:'")
        funcs.append((path, specs))
    subs = _tree(parser)
    lines = [
        "#compdef tidewire",
        "# zsh completion for tidewire (generated by `python -m tidewire.cli.docs`)",
        "",
    ]
    lines.append("_tidewire() {")
    lines.append("    local -a path_words; local i w")
    lines.append(
        '    for ((i = 2; i < CURRENT; i++)); do w="${words[i]}";'
        ' [[ "$w" == -* ]] || path_words+=("$w"); done'
    )
    lines.append('    case "${(j: :)path_words}" in')
    leaves = dict(funcs)
    groups: list[tuple[str, list[str]]] = [(p, []) for p in subs if p and p not in leaves]
    for path, specs in [*funcs[:1], *groups, *funcs[1:]]:  # a group ("peer"): its subcommands
        children = [w for w in subs.get(path, []) if not w.startswith("-")]
        if children:
            lines.append(f'        "{path}") compadd -- {" ".join(children)} ;;')
        else:
            body = " ".join(specs) if specs else "'*: :'"
            depth = len(path.split())  # _arguments wants words[1] to be the (sub)command
            lines.append(
                f'        "{path}"*) shift {depth} words; (( CURRENT -= {depth} ));'
                f" _arguments -s {body} ;;"
            )
    lines += ["    esac", "}", "", '_tidewire "$@"']
    return "\n".join(lines) + "\n"


def render() -> dict[str, str]:
    from .main import build_parser

    return {
        "tidewire.1": man(build_parser()),
        "tidewire.bash": bash(build_parser()),
        "_tidewire": zsh(build_parser()),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tidewire.cli.docs")
    sub = ap.add_subparsers(dest="what", required=True)
    sub.add_parser("write", help=f"regenerate {SHARE}")
    inst = sub.add_parser("install", help="copy the man page and completions under a prefix")
    inst.add_argument("--prefix", default="/usr/local", type=Path)
    args = ap.parse_args(argv)
    if args.what == "write":
        SHARE.mkdir(exist_ok=True)
        for name, text in render().items():
            (SHARE / name).write_text(text)
        return 0
    places = {
        "tidewire.1": args.prefix / "share/man/man1/tidewire.1",
        "tidewire.bash": args.prefix / "share/bash-completion/completions/tidewire",
        "_tidewire": args.prefix / "share/zsh/site-functions/_tidewire",
    }
    for name, dest in places.items():
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHARE / name, dest)
        print(dest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
