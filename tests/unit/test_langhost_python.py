"""The language host's Python (tools/engine/langhost-python): the host's per-phase `pip list` is
answered without pip, with what pip says; every other call reaches the Python unchanged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from vlaninfra.engine import project_root

SHIM = project_root() / "tools" / "engine" / "langhost-python"
PIP_LIST = ["-m", "pip", "list", "-v", "--format", "json"]


def _run(*args: str, python: str = sys.executable, cwd: Path | None = None) -> str:
    env = {**os.environ, "VLANINFRA_PYTHON_CMD": python}
    return subprocess.run([str(SHIM), *args], env=env, cwd=cwd, check=True,
                          capture_output=True, text=True).stdout


def _packages(listing: str) -> dict[str, tuple[str, str]]:
    return {p["name"].lower().replace("_", "-"): (p["version"], p["location"])
            for p in json.loads(listing)}


def test_pip_list_is_answered_as_pip_answers_it(tmp_path: Path) -> None:
    pip = subprocess.run([sys.executable, *PIP_LIST], cwd=tmp_path, check=True,
                         capture_output=True, text=True).stdout
    answered = _packages(_run(*PIP_LIST, cwd=tmp_path))
    assert answered == _packages(pip)
    assert "pulumi" in answered


def test_other_calls_reach_the_python_unchanged() -> None:
    out = _run("-c", "import sys; print(sys.executable, sys.argv[1:])", "a b", "-m")
    assert out == f"{sys.executable} ['a b', '-m']\n"
    assert _run("--version").startswith("Python 3.")


def test_pip_answers_when_the_listing_fails(tmp_path: Path) -> None:
    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\n[ "$1" = -c ] && { echo partial; exit 1; }\necho "pip: $*"\n')
    fake.chmod(0o755)
    assert _run(*PIP_LIST, python=str(fake)) == f"pip: {' '.join(PIP_LIST)}\n"


def test_without_a_python_named_it_takes_python3_from_path(tmp_path: Path) -> None:
    (tmp_path / "python3").symlink_to(sys.executable)
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path)}
    out = subprocess.run(["/bin/sh", str(SHIM), "-c", "print('ran')"], env=env, check=True,
                         capture_output=True, text=True).stdout
    assert out == "ran\n"
