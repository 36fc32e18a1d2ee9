"""The `tidewire` console command: argument parsing and dispatch, one module per command.

Each command module has `add_parser(subparsers)` and `run(args, env) -> int`. Errors
go to stderr as one sentence and a non-zero exit status (cli/exit_status.py).
"""

import argparse
import sys

from . import (
    cmd_client,
    cmd_dashboard,
    cmd_down,
    cmd_keys,
    cmd_metrics,
    cmd_peer,
    cmd_reload,
    cmd_report,
    cmd_rewards,
    cmd_status,
    cmd_up,
    cmd_usage,
    cmd_verify,
)
from .env import Environment
from .exit_status import ExitStatus

COMMANDS = [
    cmd_keys,
    cmd_up,
    cmd_down,
    cmd_reload,
    cmd_status,
    cmd_metrics,
    cmd_dashboard,
    cmd_peer,
    cmd_client,
    cmd_usage,
    cmd_report,
    cmd_verify,
    cmd_rewards,
]


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


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(ExitStatus.USAGE, f"tidewire: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tidewire",
        description="tidewire: a decentralized-bandwidth VPN node (WireGuard-compatible).",
    )
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None, env: Environment | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return ExitStatus.OK
    return int(args.run(args, env or Environment()))


if __name__ == "__main__":
    sys.exit(main())
