"""One stack as `up` and `rollback` drive it: engine runs with a control file, its records read
back, the program's verification report, and edits of the state (`pulumi stack export`, edit,
`pulumi stack import`): a failed apply recorded, a killed run's pending creates settled."""

from __future__ import annotations

import dataclasses
import json
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlaninfra.engine import (
    Engine,
    EngineError,
    StackLockedError,
    project_name,
    project_root,
)
from vlaninfra.errors import VlanInfraError
from vlaninfra.record import OUTPUT, ROLLOUT_ENV, records_of, who, with_failure

__all__ = [
    "RolloutError",
    "Stack",
    "history",
    "interrupted_creates",
    "read_records",
    "read_report",
    "record_failure",
    "settle_pending_creates",
    "stack_of",
    "stack_urn",
    "write_temp",
]


class RolloutError(VlanInfraError):
    """`up` or `rollback` refused before changing anything (bad input, failing preview)."""


@dataclass(frozen=True)
class Stack:
    """One stack of one project, run with `engine` (`stack_of` makes one)."""

    engine: Engine
    name: str
    cwd: Path | None

    def run(self, *args: str, control: Mapping[str, Any] | None = None) -> str:
        if control is None:
            return self.engine.run(self.name, *args, cwd=self.cwd)
        path = write_temp(control)
        try:
            engine = dataclasses.replace(self.engine, extra_env={
                **self.engine.extra_env, ROLLOUT_ENV: path})
            return engine.run(self.name, *args, cwd=self.cwd)
        finally:
            Path(path).unlink(missing_ok=True)


def write_temp(data: Mapping[str, Any]) -> str:
    """`data` as JSON in a new private temporary file (0600); its path. The caller removes it."""
    with tempfile.NamedTemporaryFile("w", prefix="vlaninfra-rollout-", suffix=".json",
                                     delete=False) as f:
        json.dump(data, f)
        return f.name


def stack_of(stack: str, engine: Engine | None, cwd: Path | None) -> Stack:
    """Stack `stack` of the project at `cwd` (default: the engine's root), run with `engine`
    (default: this checkout's). Example: ``read_records(stack_of("lab", None, None))``"""
    return Stack(engine or Engine(project_root()), stack, cwd)


def history(stack: str, *, engine: Engine | None = None,
            cwd: Path | None = None) -> list[dict[str, Any]]:
    """The stack's records, oldest first (empty when none was recorded yet).

    Example: ``[r["version"] for r in history("lab")]``
    """
    return read_records(stack_of(stack, engine, cwd))


def read_records(s: Stack) -> list[dict[str, Any]]:
    """The stack's records, oldest first; `RolloutError` when its outputs cannot be read."""
    try:
        out = s.run("stack", "output", "--json", "--show-secrets")
    except EngineError as err:
        raise RolloutError(f"stack {s.name}: cannot read its outputs (does the stack exist? "
                           f"`pulumi stack ls`):\n{err}") from None
    return records_of((json.loads(out or "{}") or {}).get(OUTPUT))


def read_report(path: str) -> dict[str, Any]:
    """What the program wrote to the control file's `report` (empty when nothing readable)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def stack_urn(s: Stack) -> str:
    """The URN of the stack resource: the only target of a finalize run."""
    project = project_name(s.cwd or s.engine.root)
    stack = s.name.rsplit("/", 1)[-1]  # `org/project/stack` names the same stack
    return f"urn:pulumi:{stack}::{project}::pulumi:pulumi:Stack::{project}-{stack}"


def _edit_state(s: Stack, edit: Callable[[dict[str, Any]], bool]) -> None:
    """`pulumi stack export`, `edit` the document in place, `pulumi stack import` when `edit`
    returns True (no resource touched on any host). Not atomic: the engine's lock is not
    held between the export and the import, so a run in between is overwritten (README,
    "Verified apply and rollback"). The import drops every pending operation (pulumi's `stack
    import` does)."""
    doc = json.loads(s.run("stack", "export"))
    if not edit(doc):
        return
    path = write_temp(doc)
    try:
        s.run("stack", "import", "--file", path)
    finally:
        Path(path).unlink(missing_ok=True)


def _pending_creates(doc: Mapping[str, Any]) -> list[str]:
    """The URNs of the pending creates in `stack export` document `doc`."""
    ops = doc["deployment"].get("pending_operations") or []
    return [op["resource"]["urn"] for op in ops if isinstance(op, dict)
            and op.get("type") == "creating" and isinstance(op.get("resource"), dict)
            and isinstance(op["resource"].get("urn"), str)]


def _unrecorded_creates(doc: Mapping[str, Any]) -> list[str]:
    """The URNs of the pending creates in `stack export` document `doc` whose resource is not
    in its state (a resource only waiting to be deleted does not count)."""
    known = {r.get("urn") for r in doc["deployment"].get("resources") or []
             if isinstance(r, dict) and not r.get("delete")}
    return [u for u in _pending_creates(doc) if u not in known]


def record_failure(s: Stack, last: int, control: Mapping[str, Any], error: str) -> str:
    """Records a failed run 1 as `apply-failed` in the state's record output (`_edit_state`),
    once more after an engine error (recording twice adds nothing, `with_failure`). Returns a
    note for the report when the recording failed, or when it dropped the pending create of a
    resource not in the state (what a killed run made for it may be on the hosts)."""
    arm = (control.get("guard") or {}).get("arm") or {}  # a windowed apply's guards
    attempt = {"by": who(), "action": control.get("action", "up"), "run": control.get("run"),
               "token": arm.get("token"),
               "rollback_to": control.get("rollback_to"),
               "failed": [ln for ln in error.strip().splitlines() if ln.strip()][-5:]}

    lost: list[str] = []  # pending creates of resources not in the state: the import drops them

    def record(doc: dict[str, Any]) -> bool:
        lost.extend(u for u in _unrecorded_creates(doc) if u not in lost)
        stack = next(r for r in doc["deployment"]["resources"]
                     if r.get("type") == "pulumi:pulumi:Stack")
        outputs = stack.setdefault("outputs", {})
        old = outputs.get(OUTPUT) or {"format": 1, "records": []}
        outputs[OUTPUT] = {**old, "records": with_failure(old.get("records") or [], last,
                                                           attempt)}
        return True

    note = ""
    for _ in range(2):
        try:
            _edit_state(s, record)
        except (EngineError, OSError, StopIteration, KeyError, TypeError, ValueError) as err:
            note = ("\n(the failed attempt could not be recorded in the stack's history: "
                    + " ".join(str(err).split()) + ")")
            if isinstance(err, StackLockedError) or not isinstance(err, EngineError):
                break
            continue
        return (f"\n(a killed run was creating {', '.join(lost)}; what it made may be on the "
                "hosts, outside the state, and the state no longer says so: remove it by hand)"
                if lost else "")
    return note


_PENDING_WARNING = "pending operations from previous deployment"
"""pulumi's warning, at the start of a run, of the pending operations killed runs left; it
lists each as ``* URN, interrupted while creating`` (or deleting, updating, ...)."""
_INTERRUPTED = re.compile(r"\* (urn:pulumi:[^,\s\"\\]+), interrupted while creating")


def interrupted_creates(out: str) -> set[str]:
    """The URNs of the creates `_PENDING_WARNING` in run output `out` lists (none without it)."""
    return set(_INTERRUPTED.findall(out)) if _PENDING_WARNING in out else set()


def settle_pending_creates(s: Stack, killed: set[str]) -> list[str]:
    """After a successful apply whose run was warned of the pending creates `killed` (the
    engine keeps them across runs, and warns of them in every run until they are gone): drops
    them once the apply has recorded every one's resource in the state (vlaninfra's creates
    adopted what the killed run made for them). `pulumi stack import` is the way, and it
    drops all pending operations, so nothing is dropped when one of them is of a resource no
    longer in the program (what the killed run made for it may be on the hosts, outside the
    state: its URN is returned), nor when the state holds another pending create (a run
    started since). Returns the URNs of the killed creates left unrecorded."""
    left: list[str] = []

    def drop(doc: dict[str, Any]) -> bool:
        pending = set(_pending_creates(doc))
        left.extend(u for u in _unrecorded_creates(doc) if u in killed)
        return bool(pending) and pending <= killed and not left

    _edit_state(s, drop)
    return left
