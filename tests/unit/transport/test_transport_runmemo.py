"""Answers shared between the phases of one engine run, and never with another run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vlaninfra.transport import _runmemo
from vlaninfra.transport._runmemo import recall, remember, run_scope

KEY = ('{"host": "192.0.2.10", "key_config": "sshKey"}', '{"address": "198.51.100.20"}')


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[int, tuple[str, str]]:
    """This process's parent poses as a `pulumi` command; returns the fake process table."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setenv("VLANINFRA_BROKER", "1")
    table = {os.getppid(): ("pulumi", "1000")}
    monkeypatch.setattr(_runmemo, "_stat", table.get)
    return table


def test_the_update_phase_sees_the_preview_answers(run: dict[int, tuple[str, str]],
                                                   tmp_path: Path) -> None:
    assert run_scope() == f"{os.getppid()}-1000"
    remember("probe", {KEY: {"ok": True}})
    assert recall("probe", [KEY], 30) == {KEY: {"ok": True}}
    assert recall("probe", [KEY], 0) == {}  # too old
    assert recall("other", [KEY], 30) == {}
    files = list((tmp_path / "vlaninfra").glob("memo-*.json"))
    assert len(files) == 1 and oct(files[0].stat().st_mode)[-3:] == "600"
    assert "198.51.100.20" not in files[0].read_text()  # keys are digests


def test_another_run_never_sees_them(run: dict[int, tuple[str, str]], tmp_path: Path) -> None:
    remember("probe", {KEY: {"ok": True}})
    run[os.getppid()] = ("pulumi", "2000")  # the next command (the pid was reused)
    assert recall("probe", [KEY], 30) == {}
    remember("probe", {KEY: {"ok": False, "answered_by": "02:00:00:00:00:01"}})
    names = [p.name for p in (tmp_path / "vlaninfra").glob("memo-*.json")]
    assert names == [f"memo-{os.getppid()}-2000.json"]  # the ended run's file is swept


def test_nothing_is_shared_outside_a_brokered_engine_process(
        run: dict[int, tuple[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    run[os.getppid()] = ("python3", "1000")
    remember("probe", {KEY: {"ok": True}})
    assert run_scope() is None and recall("probe", [KEY], 30) == {}
    run[os.getppid()] = ("pulumi", "1000")
    monkeypatch.setenv("VLANINFRA_BROKER", "0")
    assert run_scope() is None
