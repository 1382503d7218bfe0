"""`settle_pending_creates`: after a successful apply, the pending creates a killed run left are
dropped when the apply recorded every one's resource (`pulumi stack import`, which drops them
all), and kept, and named, otherwise. Through the real engine: tests/e2e/test_rollout.py."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from vlaninfra.rollout._stack import Stack, record_failure, settle_pending_creates

URN = "urn:pulumi:lab::vlaninfra::vlaninfra:index:Container::"


@dataclass
class StateEngine:
    """Answers `stack export` with `doc` and takes `stack import` into it, dropping every
    pending operation as pulumi does."""

    doc: dict[str, Any]
    imports: int = 0
    root: Path = Path("/nonexistent")
    extra_env: dict[str, str] = field(default_factory=dict)

    def run(self, stack: str | None, *args: str, cwd: Path | None = None) -> str:
        if args[:2] == ("stack", "export"):
            return json.dumps(self.doc)
        assert args[:2] == ("stack", "import"), args
        self.doc = json.loads(Path(args[args.index("--file") + 1]).read_text())
        self.doc["deployment"].pop("pending_operations", None)
        self.imports += 1
        return ""


def op(name: str) -> dict[str, Any]:
    return {"type": "creating", "resource": {"urn": URN + name}}


def state(*ops: dict[str, Any]) -> dict[str, Any]:
    return {"version": 3, "deployment": {
        "resources": [{"urn": "urn:pulumi:lab::vlaninfra::pulumi:pulumi:Stack::vlaninfra-lab",
                       "type": "pulumi:pulumi:Stack"},
                      {"urn": URN + "web11"}, {"urn": URN + "web12"}],
        "pending_operations": list(ops)}}


def stack(engine: StateEngine) -> Stack:
    fake: Any = engine  # duck-typed: `Stack` only calls `run`
    return Stack(fake, "lab", None)


def test_creates_all_recorded_are_dropped() -> None:
    engine = StateEngine(state(op("web11"), op("web12")))
    assert settle_pending_creates(stack(engine)) == []
    assert engine.imports == 1 and "pending_operations" not in engine.doc["deployment"]


def test_one_create_not_recorded_keeps_them_all() -> None:
    engine = StateEngine(state(op("web11"), op("web99")))
    assert settle_pending_creates(stack(engine)) == [URN + "web99"]
    assert engine.imports == 0


def test_no_pending_operation_imports_nothing() -> None:
    engine = StateEngine(state())
    assert settle_pending_creates(stack(engine)) == []
    assert engine.imports == 0


def test_recording_a_failure_names_the_pending_creates_the_import_drops(
        caplog: pytest.LogCaptureFixture) -> None:
    engine = StateEngine(state(op("web11"), op("web99")))
    with caplog.at_level(logging.WARNING):
        assert record_failure(stack(engine), 3, {"action": "up"}, "boom") == ""
    assert engine.imports == 1
    assert f"a killed run was creating {URN}web99;" in caplog.text
    assert "web11" not in caplog.text
