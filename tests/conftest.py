"""Shared fixtures. Lab tests (marked `lab`) skip themselves when not root.

Hypothesis runs without its per-example deadline (200 ms by default): on this shared
2-core machine an example can take longer when other work runs, and the deadline then
fails a test that asserts nothing about time (a `FlakyFailure` on a retry that is fast).
What a property asserts stays as it is; a test that means a time bound says so itself."""

from hypothesis import settings

settings.register_profile("tidewire", deadline=None)
settings.load_profile("tidewire")
