"""The main job (`scripts/demo`): a real demonstration on lab networks in namespaces.
Each step builds its own lab, shows one part of tidewire working with measured
figures, and tears the lab down:

    exit     a provider, a tidewire and a stock WireGuard client, traffic, the exit
             policy, status, signed usage, an epoch report verified offline
    skins    adaptive tunneling: udp, masked, tcp, tls under an escalating censor
    share    congestion control: two clients sharing 40 Mbit/s, latency under load
    routing  overlay routing: Babel routes over `neighbour = true` peers
    gossip   discovery by gossip among neighbours
    dht      discovery on a Mainline DHT swarm

    python netns-lab/demo [--only STEP[,STEP...]] [--list]

A step that does not work says what did not happen, prints its nodes' logs and fails
the demo (exit status 1) after the other steps have run. Run it as root.
"""

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

LABDIR = Path(__file__).resolve().parents[1]
sys.path[:1] = [str(LABDIR), str(LABDIR / "scenarios")]  # the lab's modules, by name

from demo import overlay, provider, sharing, tunneling  # noqa: E402

STEPS: dict[str, tuple[Callable[[], None], str]] = {
    "exit": (provider.run, "a provider and two clients: traffic, exit policy, usage, reports"),
    "skins": (tunneling.run, "adaptive tunneling under an escalating censor"),
    "share": (sharing.run, "congestion control: a shared uplink, latency under load"),
    "routing": (overlay.routing, "overlay routing between neighbours"),
    "gossip": (overlay.gossip, "discovery by gossip"),
    "dht": (overlay.dht, "discovery on the Mainline DHT"),
}


def _steps(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in STEPS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"no step {', '.join(unknown) or repr(text)}; the steps are {', '.join(STEPS)}"
        )
    return names


def main() -> int:
    ap = argparse.ArgumentParser(prog="scripts/demo", description="tidewire on a lab network")
    ap.add_argument(
        "--only",
        type=_steps,
        default=list(STEPS),
        metavar="STEP[,STEP...]",
        help=f"run only these steps, in this order (of {', '.join(STEPS)})",
    )
    ap.add_argument("--list", action="store_true", help="list the steps and exit")
    args = ap.parse_args()
    if args.list:
        for name, (_, what) in STEPS.items():
            print(f"{name:8} {what}")
        return 0
    took: dict[str, float] = {}
    failed: list[str] = []
    started = time.monotonic()
    for name in args.only:
        t0 = time.monotonic()
        try:
            STEPS[name][0]()
        except Exception as exc:  # the lab printed its logs; say which step, go on
            print(f"\n!!! step {name} FAILED: {exc!r}", file=sys.stderr, flush=True)
            failed.append(name)
        took[name] = time.monotonic() - t0
    total = time.monotonic() - started
    print("\n=== summary")
    for name, seconds in took.items():
        print(f"  {name:8} {'FAILED' if name in failed else 'ok':6} {seconds:5.1f} s")
    print(f"  {'total':8} {'':6} {total:5.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
