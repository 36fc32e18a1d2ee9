"""`tidewire metrics [IFACE]`: every counter of a running node, in the Prometheus text format.

With --json, the samples as a list of {"name", "labels", "value"}.
"""

import argparse
import math
import re
from typing import Any

from .control_client import add_socket_argument, run_call
from .env import Environment
from .exit_status import ExitStatus


def add_parser(sub: Any) -> None:
    p = sub.add_parser("metrics", help="print a running node's counters (Prometheus text)")
    p.add_argument("iface", metavar="IFACE", nargs="?", help="interface of the node")
    add_socket_argument(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace, env: Environment) -> int:
    reply = run_call(args, env, {"cmd": "metrics"})
    if reply is None:
        return ExitStatus.ERROR
    if env.json:
        env.emit(samples(reply["metrics"]))
    else:
        env.stdout.write(reply["metrics"])
    return ExitStatus.OK


_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?')
_ESCAPE = re.compile(r"\\(.)")


def _unescape(m: re.Match[str]) -> str:
    return "\n" if m[1] == "n" else m[1]


def _finite(number: float, text: str) -> float | str:
    return number if math.isfinite(number) else text  # JSON has no NaN or Infinity


def samples(text: str) -> list[dict[str, Any]]:
    """The Prometheus text as [{"name", "labels", "value"}], in its order (--json)."""
    out: list[dict[str, Any]] = []
    for line in text.splitlines():
        m = _SAMPLE.fullmatch(line)
        if m is None:  # HELP and TYPE comments, blank lines
            continue
        name, labels, value = m.groups()
        try:
            number = float(value)
        except ValueError:
            continue
        out.append(
            {
                "name": name,
                "labels": {k: _ESCAPE.sub(_unescape, v) for k, v in _LABEL.findall(labels or "")},
                "value": int(number) if number.is_integer() else _finite(number, value),
            }
        )
    return out
