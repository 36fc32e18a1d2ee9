"""The environment a command runs in (httpie's context.py habit): streams tests replace."""

import sys
from dataclasses import dataclass, field
from typing import TextIO


@dataclass
class Environment:
    stdin: TextIO = field(default_factory=lambda: sys.stdin)
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)

    def error(self, message: str) -> None:
        print(f"tidewire: {message}", file=self.stderr)
