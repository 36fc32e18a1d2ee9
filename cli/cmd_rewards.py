"""`tidewire rewards FILE... [--json]`: each provider's reward per epoch, from verified bytes.

Only reports of the network's epoch length (`--epoch-seconds`, 86400) count; one of
any other length is refused with a sentence, as is a provider with two different
reports for one epoch (node/core/rewards.py says why).
"""

import argparse
import math
from typing import Any

from tidewire.node.core.rewards import DAY, RewardsError, Schedule, rewards

from .cmd_verify import verify_files
from .env import Environment
from .exit_status import ExitStatus


def add_parser(sub: Any) -> None:
    p = sub.add_parser("rewards", help="compute token rewards from verified epoch reports")
    p.add_argument("files", metavar="FILE", nargs="+")
    p.add_argument("--total-supply", type=float, default=Schedule.total_supply)
    p.add_argument("--provider-share", type=float, default=Schedule.provider_share)
    p.add_argument("--halving-days", type=float, default=365)
    p.add_argument(
        "--genesis", type=int, default=Schedule.genesis, help="Unix time emission starts"
    )
    p.add_argument("--max-client-share", type=float, default=Schedule.max_client_share)
    p.add_argument(
        "--epoch-seconds",
        type=int,
        default=DAY,
        help="the network's epoch length; reports of any other are refused (86400)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace, env: Environment) -> int:
    if (
        not 0 < args.provider_share <= 1
        or not 0 < args.max_client_share <= 1
        or not 1 / DAY <= args.halving_days <= 1e6
        or not 0 <= args.total_supply < math.inf
        or not 0 < args.epoch_seconds <= 1 << 32
    ):
        env.error(
            "--provider-share and --max-client-share must be in (0, 1], --halving-days from"
            " one second to a million days, --total-supply a finite number, --epoch-seconds"
            " from 1 to 2**32"
        )
        return ExitStatus.USAGE
    failures, summaries = verify_files(args.files)
    if failures:
        for f in failures:
            env.error(f"not counted: {f}")
        return ExitStatus.ERROR
    schedule = Schedule(
        total_supply=args.total_supply,
        provider_share=args.provider_share,
        halving_seconds=int(args.halving_days * 86400),
        genesis=args.genesis,
        max_client_share=args.max_client_share,
        epoch_seconds=args.epoch_seconds,
    )
    wrong = [s for s in summaries if s["epoch_seconds"] != args.epoch_seconds]
    for s in wrong:
        env.error(
            f"not counted: {s['file']}: its epochs are {s['epoch_seconds']} seconds long; the"
            f" network's are {args.epoch_seconds} (--epoch-seconds)"
        )
    if wrong:
        return ExitStatus.ERROR
    try:
        result = rewards(summaries, schedule)
    except RewardsError as exc:  # verify_files already refused what this could be
        env.error(f"not counted: {exc}")
        return ExitStatus.ERROR
    if env.json:
        env.emit(result)
        return ExitStatus.OK
    for e in result["epochs"]:
        print(f"epoch {e['epoch']}: pool {e['pool']:.2f} tokens", file=env.stdout)
        for p in e["providers"]:
            print(
                f"  {p['provider_key'][:16]}…  verified {p['verified_bytes']} B, counted "
                f"{p['counted_bytes']:.0f} B -> {p['reward']:.4f} tokens",
                file=env.stdout,
            )
    return ExitStatus.OK
