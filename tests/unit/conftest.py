"""Unit tests never touch the machine's /run/vlaninfra: the agent's change locks
(`vlaninfra.host.oplock`) go to a temporary directory, kept as root's would be whoever runs
the tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from vlaninfra.host import oplock


@pytest.fixture(autouse=True)
def _private_lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(oplock, "LOCK_DIR", tmp_path / "run" / "locks")
    monkeypatch.setattr(oplock, "_as_root", lambda: True)
