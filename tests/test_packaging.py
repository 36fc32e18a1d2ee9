"""Both an editable install and a wheel work: the wheel is built from this tree, installed
into a fresh virtual environment (dependencies from the package index), and its
`tidewire` command runs. The wheel must hold the tidewire.* packages and nothing generic.

The wheel's test needs the package index and takes seconds, so it runs with the lab
tests (`scripts/test`, CI), not in the unit run (`-m "not lab"`). The fresh environment
is made without pip of its own (ensurepip alone took 6 s): this venv's pip installs into
it (`pip --python`)."""

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.lab  # the package index, and seconds: with the lab tests, not the unit run
def test_wheel_installs_into_a_fresh_venv_and_runs(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        timeout=300,
    )
    [wheel] = out.glob("tidewire-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"tidewire"}
    assert "tidewire/protocol/link/device.py" in names and "tidewire/cli/main.py" in names
    assert not any(n.startswith("tidewire/tests") for n in names)
    for folder in ("protocol", "node", "cli"):  # every package of the tree is in the wheel
        for init in (ROOT / folder).rglob("__init__.py"):
            module = init.relative_to(ROOT).as_posix()
            assert f"tidewire/{module}" in names, f"{module} is missing from the wheel"
    for asset in ("index.html", "app.js", "style.css"):  # the dashboard ships its page
        assert f"tidewire/cli/dashboard/{asset}" in names
    for unit in ("tidewire@.service", "tidewire.init"):  # `tidewire service install` reads them
        assert f"tidewire/cli/service/{unit}" in names

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    install = [sys.executable, "-m", "pip", "--python", str(py), "install", "-q", str(wheel)]
    subprocess.run(install, check=True, timeout=600)
    help_out = subprocess.run(
        [str(env_dir / "bin" / "tidewire"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert help_out.returncode == 0 and "usage: tidewire" in help_out.stdout
    code = "import tidewire.protocol.link.device, tidewire.node.core; print('ok')"
    imported = subprocess.run([str(py), "-c", code], capture_output=True, text=True, timeout=60)
    assert imported.stdout.strip() == "ok", imported.stderr


def test_editable_install_command_reports_its_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tidewire.cli.main", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and out.stdout.startswith("tidewire 0.")
