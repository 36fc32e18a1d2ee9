"""The `tidewire` console command: argument parsing and dispatch, one module per command.

Each command module has `add_parser(subparsers)` and `run(args, env) -> int`. Errors
go to stderr as one sentence and a non-zero exit status (cli/exit_status.py). Every
command takes `--json` (added here to any that does not define it): its answer is
one JSON document on stdout, and so is its error, bad arguments included (env.py).
"""

import argparse
import importlib
import os
import sys

from .env import Environment
from .exit_status import ExitStatus

# the command modules, in the order of `--help`; each is imported only when needed
COMMANDS = (
    "cmd_keys",
    "cmd_up",
    "cmd_down",
    "cmd_reload",
    "cmd_status",
    "cmd_metrics",
    "cmd_dashboard",
    "cmd_peer",
    "cmd_client",
    "cmd_usage",
    "cmd_discover",
    "cmd_routes",
    "cmd_exits",
    "cmd_report",
    "cmd_verify",
    "cmd_rewards",
    "cmd_service",
)
# `tidewire up` is the daemon: it parses with its own command's parser only, so the
# other commands' modules and parsers never take the running node's memory
ALONE = {"up": "cmd_up"}

JSON_HELP = 'print one JSON document on stdout, an error too ({"error": ...})'


def _version() -> str:
    # imported here: importlib.metadata costs a running daemon 1.6 MiB (issue 5)
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tidewire")
    except PackageNotFoundError:  # running from a source tree without an install
        return "0+unknown"


class _VersionAction(argparse.Action):
    """`--version`, looked up only when asked for."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        print(f"tidewire {_version()}")
        parser.exit(0)


class UsageError(Exception):
    """Bad arguments: one sentence, exit status 2 (main prints it, as text or JSON)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _leaf_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The parsers that run a command (`client add`, `status`), not those that name one."""
    out: list[argparse.ArgumentParser] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                out += _leaf_parsers(child)
    return out or [parser]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Every command's parser; with `only` (a module in COMMANDS), that command's alone."""
    parser = _Parser(
        prog="tidewire",
        description="tidewire: a decentralized-bandwidth VPN node (WireGuard-compatible).",
    )
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS if only is None else (only,):
        importlib.import_module(f"{__package__}.{name}").add_parser(sub)
    for leaf in _leaf_parsers(parser):
        if leaf is not parser and not any(a.dest == "json" for a in leaf._actions):
            leaf.add_argument("--json", action="store_true", help=JSON_HELP)
    return parser


def main(argv: list[str] | None = None, env: Environment | None = None) -> int:
    env = env or Environment()
    argv = sys.argv[1:] if argv is None else argv
    # known before parsing, so that bad arguments are answered in JSON too
    env.json = "--json" in (argv[: argv.index("--")] if "--" in argv else argv)
    parser = build_parser(ALONE.get(argv[0]) if argv else None)
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        env.error(str(exc))
        return env.finish(ExitStatus.USAGE)
    if args.command is None:
        parser.print_help(env.stdout)
        return ExitStatus.OK
    del parser  # a daemon runs on for months; its parser is garbage now
    env.json = bool(getattr(args, "json", False))
    return env.finish(int(args.run(args, env)))


# `up` runs the daemon for months: in an interpreter without docstrings and asserts
# (-OO) it holds about 1.6 MB less (BENCHMARKS.md, "Memory"); its asserts only narrow
# types. -P: no working directory on sys.path. TIDEWIRE_OPTIMIZE=0 keeps the interpreter
# as started.
LEAN = ("-OO", "-P", "-c", "import sys; from tidewire.cli.main import main; sys.exit(main())")


def run(argv: list[str] | None = None) -> int:
    """The console script: `main`, after re-executing `up` in a lean interpreter (the
    same process: its pid, environment and open descriptors stay)."""
    argv = sys.argv[1:] if argv is None else argv
    lean = sys.flags.optimize >= 2 or os.environ.get("TIDEWIRE_OPTIMIZE") == "0"
    if argv[:1] == ["up"] and not lean and sys.executable:
        os.execv(sys.executable, [sys.executable, *LEAN, *argv])
    return main(argv)


if __name__ == "__main__":
    sys.exit(run())
