"""The environment a command runs in (httpie's context.py habit): streams and the
folders `up NAME` looks in (node/config/locate.py), which tests replace.

Output goes through it, so every command answers alike. `emit` prints the answer: the
text for a person, or under `--json` one JSON document on stdout. `error` prints one
sentence to stderr; under `--json` it is kept instead, and when the command fails
main.py prints `{"error": the last sentence, "exit_status": N}` (with every sentence
under "messages" when there were several) on stdout, so a failure is one JSON document
in the same place as an answer, with the same exit status as without `--json`. A
sentence of a command that succeeded (a note) goes to stderr as `{"warning": ...}`.
"""

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO


@dataclass
class Environment:
    stdin: TextIO = field(default_factory=lambda: sys.stdin)
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    # a bare NAME is NAME.toml in the first, then NAME.conf in the second
    config_dirs: tuple[Path, Path] = (Path("/etc/tidewire"), Path("/etc/wireguard"))
    json: bool = False  # --json: set by main.py
    messages: list[str] = field(default_factory=list)  # error sentences kept under --json
    emitted: bool = False  # a JSON document is on stdout already

    def error(self, message: str) -> None:
        if self.json:
            self.messages.append(message)
        else:
            print(f"tidewire: {message}", file=self.stderr)

    def emit(self, data: Any, text: str | None = None) -> None:
        """The command's answer: `text` (when there is any), or `data` under --json."""
        if self.json:
            print(json.dumps(data, indent=2, sort_keys=True), file=self.stdout)
            self.emitted = True
        elif text is not None:
            print(text, file=self.stdout)

    def finish(self, status: int) -> int:
        """Under --json, a failure without a document of its own becomes {"error": ...}."""
        if not self.json:
            return status
        if status != 0 and not self.emitted:
            doc: dict[str, Any] = {
                "error": self.messages[-1] if self.messages else f"failed (status {status})",
                "exit_status": status,
            }
            if len(self.messages) > 1:
                doc["messages"] = list(self.messages)
            self.emit(doc)
        else:
            for message in self.messages:
                print(json.dumps({"warning": message}), file=self.stderr)
        self.messages.clear()
        return status
