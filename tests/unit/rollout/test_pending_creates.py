"""`settle_pending_creates`: after a successful apply, the pending creates a killed run left
(those pulumi's warning listed) are dropped when the apply recorded every one's resource
(`pulumi stack import`, which drops them all), and kept, and named, otherwise. Through the
real engine: tests/e2e/test_rollout.py."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from vlaninfra.rollout._stack import (
    Stack,
    interrupted_creates,
    record_failure,
    settle_pending_creates,
)

URN = "urn:pulumi:lab::vlaninfra::vlaninfra:index:Site$pulumi-python:dynamic:Resource::a-h1-"


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


def op(name: str, kind: str = "creating") -> dict[str, Any]:
    return {"type": kind, "resource": {"urn": URN + name}}


def state(*ops: dict[str, Any]) -> dict[str, Any]:
    return {"version": 3, "deployment": {
        "resources": [{"urn": "urn:pulumi:lab::vlaninfra::pulumi:pulumi:Stack::vlaninfra-lab",
                       "type": "pulumi:pulumi:Stack"},
                      {"urn": URN + "web11"}, {"urn": URN + "web12"},
                      {"urn": URN + "web13", "delete": True}],
        "pending_operations": list(ops)}}


def stack(engine: StateEngine) -> Stack:
    fake: Any = engine  # duck-typed: `Stack` only calls `run`
    return Stack(fake, "lab", None)


def killed(*names: str) -> set[str]:
    return {URN + n for n in names}


def test_the_warning_names_the_interrupted_creates_in_json_output() -> None:
    warning = ("Attempting to deploy or update resources with 3 pending operations from "
               f"previous deployment.\n  * {URN}web11, interrupted while creating\n"
               f"  * {URN}web12, interrupted while creating\n"
               f"  * {URN}web1, interrupted while deleting\nThese resources are in an unknown")
    out = json.dumps({"diagnostics": [{"message": warning, "severity": "warning"}]})
    assert interrupted_creates(out) == killed("web11", "web12")
    assert interrupted_creates(f"* {URN}web11, interrupted while creating") == set()


def test_creates_all_recorded_are_dropped() -> None:
    engine = StateEngine(state(op("web11"), op("web12")))
    assert settle_pending_creates(stack(engine), killed("web11", "web12")) == []
    assert engine.imports == 1 and "pending_operations" not in engine.doc["deployment"]


@pytest.mark.parametrize("unrecorded", ["web99", "web13"])  # web13: only waiting for deletion
def test_one_create_not_recorded_keeps_them_all(unrecorded: str) -> None:
    engine = StateEngine(state(op("web11"), op(unrecorded)))
    assert settle_pending_creates(stack(engine), killed("web11", unrecorded)) == [
        URN + unrecorded]
    assert engine.imports == 0


def test_another_runs_pending_create_is_left_alone_and_not_named() -> None:
    engine = StateEngine(state(op("web11"), op("web99")))  # web99: a run started since
    assert settle_pending_creates(stack(engine), killed("web11")) == []
    assert engine.imports == 0


def test_no_pending_create_imports_nothing() -> None:
    engine = StateEngine(state(op("web11", "deleting")))
    assert settle_pending_creates(stack(engine), killed("web11")) == []
    assert engine.imports == 0


def test_recording_a_failure_names_the_pending_creates_the_import_drops() -> None:
    engine = StateEngine(state(op("web11"), op("web99")))
    note = record_failure(stack(engine), 3, {"action": "up"}, "boom")
    assert engine.imports == 1
    assert f"a killed run was creating {URN}web99;" in note and "remove it by hand" in note
    assert "web11" not in note
    assert record_failure(stack(StateEngine(state(op("web11")))), 3, {"action": "up"},
                          "boom") == ""
