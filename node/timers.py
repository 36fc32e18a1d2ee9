"""The node's one timer task: it sleeps until the earliest deadline of every component.

A component is anything with `get_timer() -> float | None` (monotonic seconds) and
`handle_timer(*, now)`, the sans-IO habit of aioquic: the link's device, the
accountant, the ticker, and later the queues, the pacer and the path logic. When it
wakes, every component is offered the time (each fires only what is due to it), then
`after` flushes what they produced (events, datagrams).

Other tasks never wake this one: after their work, `rearm` only moves the sleep's
deadline earlier when some component's deadline moved earlier, which costs no task
switch on the packet path. A deadline that moved later just makes one early, harmless
wake-up.
"""

from collections.abc import Callable
from typing import Protocol

import trio


class TimerComponent(Protocol):
    def get_timer(self) -> float | None: ...

    def handle_timer(self, *, now: float) -> None: ...


class TimerTask:
    def __init__(self, *, after: Callable[[], None]) -> None:
        self.components: list[TimerComponent] = []
        self.after = after
        self.wakeups = 0
        self._scope: trio.CancelScope | None = None
        self._bound: list[Callable[[], float | None]] | None = None

    def add(self, component: TimerComponent) -> None:
        self.components.append(component)
        self._bound = None
        self.rearm()

    def replace(self, old: TimerComponent, new: TimerComponent) -> None:
        self.components[self.components.index(old)] = new
        self._bound = None
        self.rearm()

    def rearm(self) -> None:
        scope = self._scope
        if scope is None:
            return
        current = scope.deadline
        for get in self._getters:
            deadline = get()
            if deadline is not None and deadline < current:
                current = deadline
        if current < scope.deadline:
            scope.deadline = current

    @property
    def _getters(self) -> list[Callable[[], float | None]]:
        """The components' get_timer methods, bound once (rearm runs after every batch)."""
        if self._bound is None:
            self._bound = [c.get_timer for c in self.components]
        return self._bound

    async def run(self) -> None:
        while True:
            with trio.CancelScope() as scope:
                self._scope = scope
                self.rearm()
                await trio.sleep_forever()
            self._scope = None
            self.wakeups += 1
            now = trio.current_time()
            for component in self.components:
                component.handle_timer(now=now)
            self.after()
