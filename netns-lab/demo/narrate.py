"""What the demo prints, and how a step fails: a title per step, short narration lines,
and `expect`, which stops the step with one sentence when what it shows did not happen
(the step's lab then prints the node logs and tears down)."""

import time


class DemoFailure(Exception):
    pass


def step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def say(text: str) -> None:
    print("\n".join(f"  {line}" for line in text.splitlines()), flush=True)


def show(ok: bool, what: str) -> None:
    say(f"{'got through' if ok else 'refused   '}  {what}")


def expect(ok: object, what: str) -> None:
    """Stop the step unless `ok`: `what` says what should have happened."""
    if not ok:
        raise DemoFailure(what)


class Stopwatch:
    """Seconds since it was made (or last reset), on the monotonic clock."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def reset(self) -> None:
        self.start = time.monotonic()

    def __call__(self) -> float:
        return time.monotonic() - self.start
