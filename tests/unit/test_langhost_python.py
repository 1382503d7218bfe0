"""The language host's Python (tools/engine/langhost-python): the host's per-phase `pip list` is
answered without pip, with what pip says; every other call reaches the Python the host would
have run, in the environment the user gave."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from vlaninfra.engine import project_root

SHIM = project_root() / "tools" / "engine" / "langhost-python"
PIP_LIST = ["-m", "pip", "list", "-v", "--format", "json"]
SHOW_ENV = ["-c", "import os, sys; print(sys.executable, os.environ.get('PULUMI_PYTHON_CMD'), "
            "os.environ.get('VLANINFRA_PYTHON_CMD'))"]


def _run(*args: str, cwd: Path | None = None, **env: str) -> str:
    """The shim run as the launcher starts it: the user's Python kept in VLANINFRA_PYTHON_CMD
    (this interpreter unless ``env`` says otherwise)."""
    full = {**os.environ, "PULUMI_PYTHON_CMD": str(SHIM),
            "VLANINFRA_PYTHON_CMD": sys.executable, **env}
    return subprocess.run([str(SHIM), *args], env={k: v for k, v in full.items() if v != "-"},
                          cwd=cwd, check=True, capture_output=True, text=True).stdout


def _packages(listing: str) -> dict[str, tuple[str, str]]:
    return {p["name"]: (p["version"], p["location"]) for p in json.loads(listing)}


def test_pip_list_is_answered_as_pip_answers_it(tmp_path: Path) -> None:
    # Metadata in the working directory (the host lists in the project's) is not installed.
    stale = tmp_path / "pulumi_stale-9.9.9.dist-info"
    stale.mkdir()
    (stale / "METADATA").write_text("Metadata-Version: 2.1\nName: pulumi-stale\nVersion: 9.9.9\n")
    pip = subprocess.run([sys.executable, *PIP_LIST], cwd=tmp_path, check=True,
                         capture_output=True, text=True).stdout
    answered = _packages(_run(*PIP_LIST, cwd=tmp_path))
    assert answered == _packages(pip)
    assert "pulumi" in answered and "pulumi-stale" not in answered


def test_other_calls_reach_the_users_python_in_the_users_environment(tmp_path: Path) -> None:
    out = _run("-c", "import sys; print(sys.executable, sys.argv[1:])", "a b", "-m")
    assert out == f"{sys.executable} ['a b', '-m']\n"
    assert _run("--version").startswith("Python 3.")
    # The program (and any pulumi it starts) sees the user's PULUMI_PYTHON_CMD, not the shim.
    assert _run(*SHOW_ENV) == f"{sys.executable} {sys.executable} None\n"
    # A plugin the host starts with the CLI's own environment: the user's setting is there.
    assert _run(*SHOW_ENV, VLANINFRA_PYTHON_CMD="-", PULUMI_PYTHON_CMD=sys.executable) == \
        f"{sys.executable} {sys.executable} None\n"


def test_without_a_python_named_it_takes_python3_from_path(tmp_path: Path) -> None:
    (tmp_path / "python3").symlink_to(sys.executable)
    path = f"{tmp_path}:/usr/bin:/bin"
    assert _run(*SHOW_ENV, VLANINFRA_PYTHON_CMD="", PATH=path).startswith(
        f"{tmp_path}/python3 None None")
    # Another checkout's shim is never taken for the user's Python (it would exec itself).
    other = "/elsewhere/.engine/libexec/langhost-python"
    assert _run(*SHOW_ENV, VLANINFRA_PYTHON_CMD=other, PATH=path).startswith(
        f"{tmp_path}/python3 None None")


def test_pip_answers_when_the_listing_fails(tmp_path: Path) -> None:
    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\n[ "$1" = -c ] && { echo partial; exit 1; }\necho "pip: $*"\n')
    fake.chmod(0o755)
    assert _run(*PIP_LIST, VLANINFRA_PYTHON_CMD=str(fake)) == f"pip: {' '.join(PIP_LIST)}\n"
