"""What makes the node behave like a service, as wg-quick(8) has it: the routing table
(`Table`), the firewall mark of the outer sockets (`FwMark`), the hooks run around up
and down (`PreUp`, `PostUp`, `PreDown`, `PostDown`), writing the running peers back at
stop (`SaveConfig`), and tidewire's kill switch.

Both readers fill one `ServiceSpec`; the checks of each value live here, reporting
through the reader's `Err` (which knows the file and the line).

- Table: "auto" (routes in the main table; a default route goes to a table of its
  own selected by the fwmark, as wg-quick does), "off" (no routes at all), or a table
  number (every route in that table, and no rules); "main" is table 254.
- FwMark: a 32-bit mark, decimal or 0x hex; 0 or "off" leave the default (the listen
  port), which the routing rule of a default route needs.
"""

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # fields imports the package, which imports this module
    from .fields import Err

AUTO, OFF = "auto", "off"
MAIN_TABLE = 254
MAX_U32 = (1 << 32) - 1
HOOKS = ("pre_up", "post_up", "pre_down", "post_down")
WG_HOOKS = {"preup": "pre_up", "postup": "post_up", "predown": "pre_down", "postdown": "post_down"}
TABLE_RULE = f"must be off, auto, main or a routing table number from 1 to {MAX_U32}"


@dataclass(frozen=True)
class Hook:
    """One command of a hook, and where the file has it (for errors)."""

    command: str
    line: int | None
    key: str  # as the file spells it: "PostUp" or "[interface] post_up"


@dataclass
class ServiceSpec:
    table: int | str = AUTO  # AUTO, OFF or a table number
    fwmark: int | None = None  # None: the listen port
    hooks: dict[str, list[Hook]] = field(default_factory=lambda: {h: [] for h in HOOKS})
    save_config: bool = False
    kill_switch: bool = False
    kill_switch_allow_lan: bool = False

    def any_hooks(self) -> bool:
        return any(self.hooks.values())


def table(value: Any, err: "Err", name: str) -> int | str:
    if isinstance(value, str):
        text = value.strip().lower()
        if text in (AUTO, OFF):
            return text
        if text == "main":
            return MAIN_TABLE
        if not (text.isascii() and text.isdigit()) or len(text) > 10:
            err(name, f"{TABLE_RULE} (got {value.strip()!r})")
        value = int(text)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_U32:
        err(name, f"{TABLE_RULE} (got {value!r})")
    return int(value)


def fwmark(value: Any, err: "Err", name: str) -> int | None:
    rule = f"must be off or a mark from 0 to {MAX_U32} (decimal, or hex as 0x...)"
    if isinstance(value, str):
        text = value.strip().lower()
        if text == OFF:
            return None
        try:
            if not text.isascii() or len(text) > 12:
                raise ValueError
            value = int(text, 16) if text.startswith("0x") else int(text, 10)
        except ValueError:
            err(name, f"{rule} (got {value.strip()!r})")
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_U32:
        err(name, f"{rule} (got {value!r})")
    return int(value) or None


def hook(value: Any, err: "Err", name: str, *, line: int | None, label: str) -> Hook:
    if not isinstance(value, str) or not value.strip():
        err(name, "must be a shell command (it runs through bash -c, %i is the interface)")
    if "\0" in value:
        err(name, "a command cannot hold a NUL character")
    return Hook(value.strip(), line, label)
