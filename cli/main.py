"""The `tidewire` console command: argument parsing and dispatch, one module per command."""

import argparse
import sys
from importlib.metadata import PackageNotFoundError, version

from .status import ExitStatus


def _version() -> str:
    try:
        return version("tidewire")
    except PackageNotFoundError:  # running from a source tree without an install
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tidewire",
        description="tidewire: a decentralized-bandwidth VPN node (WireGuard-compatible).",
    )
    parser.add_argument("--version", action="version", version=f"tidewire {_version()}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return ExitStatus.OK
    return ExitStatus.OK  # pragma: no cover - commands arrive with the daemon


if __name__ == "__main__":
    sys.exit(main())
