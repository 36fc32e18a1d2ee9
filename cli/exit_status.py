"""Exit statuses of the `tidewire` command (httpie's status.py habit)."""

from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2  # argparse's own status for bad arguments
