"""The sans-IO rule of DESIGN.md: protocol/ and node/core/ do no I/O, read no clock, draw no
randomness."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"trio", "socket", "os", "time", "random", "select", "asyncio", "subprocess", "secrets"}
CORE_DIRS = [ROOT / "protocol", ROOT / "node" / "core"]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


CORE_FILES = sorted(p for d in CORE_DIRS for p in d.rglob("*.py"))


def test_the_rule_sees_the_core() -> None:
    assert any(p.name == "device.py" for p in CORE_FILES)


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_core_module_imports_no_io(path: Path) -> None:
    bad = imported_modules(path) & FORBIDDEN
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_checker_catches_a_forbidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "bad.py"
    sample.write_text("import os.path\nfrom time import monotonic\n")
    assert imported_modules(sample) & FORBIDDEN == {"os", "time"}


def test_scapy_is_never_imported_outside_tests() -> None:
    for folder in ("protocol", "node", "cli"):
        for path in (ROOT / folder).rglob("*.py"):
            assert "scapy" not in imported_modules(path), path
