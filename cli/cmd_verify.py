"""`tidewire verify FILE...`: check epoch reports offline; OK, or each failure with its reason."""

import argparse
import json
from typing import Any

from tidewire.protocol.accounting.report import verify_report, verify_sequence

from .env import Environment
from .exit_status import ExitStatus


def add_parser(sub: Any) -> None:
    p = sub.add_parser("verify", help="check signed epoch reports (offline)")
    p.add_argument("files", metavar="FILE", nargs="+")
    p.set_defaults(run=run)


def load(path: str) -> tuple[Any, str | None]:
    try:
        with open(path) as f:
            return json.load(f), None
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror})"
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"is not JSON ({exc})"


def verify_files(paths: list[str]) -> tuple[list[str], list[dict[str, Any]]]:
    failures, summaries = [], []
    for path in paths:
        doc, error = load(path)
        if error:
            failures.append(f"{path}: {error}")
            continue
        problems, summary = verify_report(doc)
        failures += [f"{path}: {p}" for p in problems]
        if not problems:
            summaries.append(summary)
    failures += verify_sequence(summaries)
    return failures, summaries


def run(args: argparse.Namespace, env: Environment) -> int:
    failures, summaries = verify_files(args.files)
    for f in failures:
        print(f"FAIL {f}", file=env.stdout)
    if failures:
        return ExitStatus.ERROR
    for s in summaries:
        print(
            f"OK epoch {s['epoch']} provider {s['provider_key'][:16]}…: "
            f"{len(s['sessions'])} sessions, "
            f"{s['verified_bytes']} verified bytes",
            file=env.stdout,
        )
    return ExitStatus.OK
