"""`tidewire verify FILE...`: check epoch reports offline; OK, or each failure with its reason.

Every file that is not a valid report, whatever it holds, is one FAIL line naming
the file and the reason. The same report given twice (the same provider, epoch and
signature) counts once; a second, different report of a provider for an epoch it
already reported is a failure, since only one of them can be the provider's word.
"""

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
        with open(path, "rb") as f:
            return json.loads(f.read()), None
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror})"
    except RecursionError:
        return None, "is not a report (JSON nested too deeply)"
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, too many digits
        return None, f"is not JSON ({str(exc)[:200]})"


def verify_files(paths: list[str]) -> tuple[list[str], list[dict[str, Any]]]:
    failures: list[str] = []
    summaries: list[dict[str, Any]] = []
    first: dict[tuple[str, int], tuple[str, str]] = {}  # (provider, epoch) -> (path, signature)
    for path in paths:
        doc, error = load(path)
        if error:
            failures.append(f"{path}: {error}")
            continue
        problems, summary = verify_report(doc)
        failures += [f"{path}: {p}" for p in problems]
        if problems:
            continue
        key = (summary["provider_key"], summary["epoch"])
        if key in first:
            other, signature = first[key]
            if signature != summary["signature"]:
                failures.append(
                    f"{path}: provider {key[0][:16]} already reported epoch {key[1]} "
                    f"differently in {other}"
                )
            continue  # an exact copy counts once
        first[key] = (path, summary["signature"])
        summaries.append({**summary, "file": path})
    failures += verify_sequence(summaries)
    return failures, summaries


def run(args: argparse.Namespace, env: Environment) -> int:
    failures, summaries = verify_files(args.files)
    if env.json:  # keys in base64, as the reports write them
        doc: dict[str, Any] = {"ok": not failures, "failures": failures, "reports": summaries}
        if failures:
            more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
            doc["error"] = f"{failures[0]}{more}"
        env.emit(doc)
        return ExitStatus.ERROR if failures else ExitStatus.OK
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
