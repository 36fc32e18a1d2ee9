"""One registry of every counter the node keeps: status, and later /metrics, read it here.

The packet path keeps counting the cheapest way there is, into plain `Counter`s and
attributes of its own objects; the registry knows where each lives. A family has a
name (Prometheus style, `tidewire_..._total` for counters), a help text, and at most
one label whose values are bounded: drop reasons are strings written in the code, and
peers are as many as are configured. A family that somehow grows past `MAX_SERIES`
label values folds the rest into "other" rather than grow without bound.
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

MAX_SERIES = 256


@dataclass(frozen=True)
class Family:
    name: str
    help: str
    kind: str  # "counter" or "gauge"
    label: str | None
    read: Callable[[], Iterable[tuple[str, float]]]  # (label value, value); "" if no label


class Registry:
    def __init__(self) -> None:
        self.families: dict[str, Family] = {}

    def _add(self, family: Family) -> None:
        if family.name in self.families:
            raise ValueError(f"metric {family.name} is already registered")
        self.families[family.name] = family

    def counters(
        self, name: str, help: str, *, label: str, source: Mapping[str, int], prefix: str = ""
    ) -> None:
        """A labelled counter family read from a Counter (optionally only keys with `prefix`,
        which is cut from the label value)."""

        def read() -> Iterable[tuple[str, float]]:
            return [(k[len(prefix) :], v) for k, v in source.items() if k.startswith(prefix)]

        self._add(Family(name, help, "counter", label, read))

    def value(self, name: str, help: str, read: Callable[[], float], *, kind: str) -> None:
        self._add(Family(name, help, kind, None, lambda: [("", read())]))

    def labelled(
        self,
        name: str,
        help: str,
        *,
        label: str,
        read: Callable[[], Iterable[tuple[str, float]]],
        kind: str = "counter",
    ) -> None:
        self._add(Family(name, help, kind, label, read))

    def collect(self, name: str) -> dict[str, float]:
        """A family's current values by label value, bounded to MAX_SERIES."""
        out: dict[str, float] = {}
        for key, value in self.families[name].read():
            if key not in out and len(out) >= MAX_SERIES:
                key = "other"
            out[key] = out.get(key, 0) + value
        return out

    def render(self) -> str:
        """The Prometheus text exposition format (version 0.0.4)."""
        lines: list[str] = []
        for fam in self.families.values():
            lines.append(f"# HELP {fam.name} {fam.help}")
            lines.append(f"# TYPE {fam.name} {fam.kind}")
            for key, value in sorted(self.collect(fam.name).items()):
                if fam.label is None:
                    lines.append(f"{fam.name} {_number(value)}")
                else:
                    escaped = key.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
                    lines.append(f'{fam.name}{{{fam.label}="{escaped}"}} {_number(value)}')
        return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
