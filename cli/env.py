"""The environment a command runs in (httpie's context.py habit): streams and the
folders `up NAME` looks in (node/config/locate.py), which tests replace."""

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO


@dataclass
class Environment:
    stdin: TextIO = field(default_factory=lambda: sys.stdin)
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    # a bare NAME is NAME.toml in the first, then NAME.conf in the second
    config_dirs: tuple[Path, Path] = (Path("/etc/tidewire"), Path("/etc/wireguard"))

    def error(self, message: str) -> None:
        print(f"tidewire: {message}", file=self.stderr)
