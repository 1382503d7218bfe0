"""Verified apply and rollback, as functions a program or CI job calls (`vlaninfra up`,
`vlaninfra rollback` and `vlaninfra history` are thin commands over them).

`up`: preview, apply with the real engine, verify through the agents, record; when the apply
fails part way or verification fails, apply the last verified record again (its layout, its
allocations pinned), verify it, and report. `rollback`: apply a recorded version, verified.
The records live in the stack's state (`vlaninfra.record`), so neither needs a git checkout.

Example::

    report = up("prod", engine=Engine(project_root()))
    print(report.text()); sys.exit(0 if report.ok else 1)
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlaninfra._text import table
from vlaninfra.engine import Engine, EngineError, project_root
from vlaninfra.errors import VlanInfraError
from vlaninfra.record import OUTPUT, ROLLOUT_ENV, records_of, who
from vlaninfra.verify import Verification

__all__ = ["Report", "RolloutError", "history", "render_history", "rollback", "up"]

Confirm = Callable[[str], bool]
"""Shown the preview; True to go on."""


class RolloutError(VlanInfraError):
    """`up` or `rollback` refused before changing anything (bad input, failing preview)."""


@dataclass(frozen=True)
class Step:
    """One apply: what it was, whether it went through, its verification."""

    what: str
    applied: bool
    error: str | None
    verification: Verification | None
    seconds: float
    version: int | None = None

    @property
    def ok(self) -> bool:
        # Every apply asks the program to verify: no verification is a failure, not a pass.
        return self.applied and self.verification is not None and self.verification.ok

    def lines(self) -> list[str]:
        took = f"{self.seconds:.1f} s"
        if not self.applied:
            return [f"{self.what}: the apply FAILED after {took}:", *_indent(self.error or "")]
        recorded = f" (recorded as version {self.version})" if self.version else ""
        v = self.verification
        if v is None:
            return [f"{self.what}: applied in {took}{recorded}, not verified:",
                    *_indent(self.error or "")]
        if v.ok:
            return [f"{self.what}: applied and verified in {took}{recorded}: "
                    f"{len(v.rows)} checks passed ({v.seconds:.1f} s)"]
        failed = [f"{r.where} {r.check} {r.target}: {r.detail}" for r in v.failed]
        return [f"{self.what}: applied in {took}{recorded}, verification FAILED "
                f"({len(failed)} of {len(v.rows)} checks):", *_indent("\n".join(failed))]


def _indent(text: str) -> list[str]:
    return ["    " + line for line in text.strip().splitlines()]


@dataclass(frozen=True)
class Report:
    """What `up` or `rollback` did. ``ok``: the requested change is on the hosts, verified."""

    stack: str
    action: str
    steps: tuple[Step, ...]
    final: str

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(s.ok for s in self.steps)

    @property
    def rolled_back(self) -> bool:
        return len(self.steps) > 1

    def text(self) -> str:
        head = f"vlaninfra {self.action} --stack {self.stack}: {'ok' if self.ok else 'FAILED'}"
        return "\n".join([head, *("  " + ln for s in self.steps for ln in s.lines()),
                          f"  final state: {self.final}"])


@dataclass(frozen=True)
class _Stack:
    engine: Engine
    name: str
    cwd: Path | None

    def run(self, *args: str, control: Mapping[str, Any] | None = None) -> str:
        if control is None:
            return self.engine.run(self.name, *args, cwd=self.cwd)
        path = _write_temp(control)
        try:
            engine = dataclasses.replace(self.engine, extra_env={
                **self.engine.extra_env, ROLLOUT_ENV: path})
            return engine.run(self.name, *args, cwd=self.cwd)
        finally:
            Path(path).unlink(missing_ok=True)


def _write_temp(data: Mapping[str, Any]) -> str:
    with tempfile.NamedTemporaryFile("w", prefix="vlaninfra-rollout-", suffix=".json",
                                     delete=False) as f:
        json.dump(data, f)
        return f.name


def _stack(stack: str, engine: Engine | None, cwd: Path | None) -> _Stack:
    return _Stack(engine or Engine(project_root()), stack, cwd)


def history(stack: str, *, engine: Engine | None = None,
            cwd: Path | None = None) -> list[dict[str, Any]]:
    """The stack's records, oldest first (empty when none was recorded yet).

    Example: ``[r["version"] for r in history("lab")]``
    """
    return _records(_stack(stack, engine, cwd))


def _records(s: _Stack) -> list[dict[str, Any]]:
    try:
        out = s.run("stack", "output", "--json")
    except EngineError as err:
        raise RolloutError(f"stack {s.name}: cannot read its outputs (does the stack exist? "
                           f"`pulumi stack ls`):\n{err}") from None
    return records_of((json.loads(out or "{}") or {}).get(OUTPUT))


def render_history(records: Sequence[Mapping[str, Any]]) -> str:
    """The records as a table: version, time, by, action, status, summary."""
    rows = []
    for r in records:
        action = r.get("action", "?")
        if r.get("rollback_to") is not None:
            action = f"{action} to {r['rollback_to']}"
        note = r.get("summary") or ""
        if r.get("failed"):
            note = f"{r['failed'][0]}" + (f" (+{len(r['failed']) - 1} more)"
                                          if len(r["failed"]) > 1 else "")
        rows.append((r.get("version"), r.get("time"), r.get("by"), action, r.get("status"),
                     "" if r.get("layout") is not None else "(layout not kept)"
                     if r.get("status") == "verified" else "", note))
    return "\n".join(table(("version", "time", "by", "action", "status", "", "summary"), rows))


def _last_verified(records: Sequence[Mapping[str, Any]],
                   before: int | None = None) -> Mapping[str, Any] | None:
    return next((r for r in reversed(records)
                 if r.get("status") == "verified" and r.get("layout") is not None
                 and r.get("allocations") is not None
                 and (before is None or int(r["version"]) < before)), None)


def _apply(s: _Stack, what: str, message: str, control: dict[str, Any]) -> Step:
    report = _write_temp({})
    started = time.monotonic()
    try:
        # --json: an error comes back as the engine's diagnostics, not the display's tail.
        s.run("up", "--yes", "--skip-preview", "--json", "--message", message,
              control={**control, "verify": True, "report": report, "by": who()})
    except EngineError as err:
        Path(report).unlink(missing_ok=True)
        return Step(what, False, str(err), None, time.monotonic() - started)
    data = json.loads(Path(report).read_text(encoding="utf-8") or "{}")
    Path(report).unlink(missing_ok=True)
    verification = Verification.from_json(data) if data else None
    records = _records(s)
    version = int(records[-1]["version"]) if records else None
    error = None if data else ("the program did not verify (is the stack's program "
                               "vlaninfra.program, and this vlaninfra version?)")
    return Step(what, True, error, verification, time.monotonic() - started, version)


def _preview(s: _Stack, control: Mapping[str, Any], confirm: Confirm | None) -> None:
    try:
        shown = s.run("preview", "--diff", "--suppress-outputs", control=control)
    except EngineError as err:
        raise RolloutError(f"preview of stack {s.name} failed; nothing was changed:\n{err}"
                           ) from None
    if confirm is not None and not confirm(shown):
        raise RolloutError("not confirmed; nothing was changed")


def _rollback_control(target: Mapping[str, Any]) -> dict[str, Any]:
    return {"action": "rollback", "layout": target["layout"],
            "pins": target["allocations"], "rollback_to": int(target["version"])}


def up(stack: str, *, engine: Engine | None = None, cwd: Path | None = None,
       confirm: Confirm | None = None, rollback: bool = True,
       extra: Mapping[str, Any] | None = None) -> Report:
    """Preview, apply, verify, record; on failure roll back to the last verified record.

    `confirm` sees the preview and may refuse (then nothing changes); `rollback=False` leaves
    a failed change in place for inspection; `extra` goes into the apply's control file
    (`vlaninfra.confirm`: the hosts' guards). Example: ``up("lab", rollback=False).ok``
    """
    s = _stack(stack, engine, cwd)
    before = _records(s)
    _preview(s, {"action": "up"}, confirm)
    step = _apply(s, "apply", "vlaninfra up", {"action": "up", **(extra or {})})
    if step.ok:
        return Report(stack, "up", (step,), f"version {step.version} is on the hosts, verified")
    target = _last_verified(before)
    if not rollback:
        return Report(stack, "up", (step,), "the failed change is left on the hosts for "
                      "inspection (--no-rollback); `vlaninfra rollback` returns to version "
                      f"{target['version']}" if target else "the failed change is left on "
                      "the hosts (--no-rollback); no verified version to return to")
    if target is None:
        return Report(stack, "up", (step,), "no verified version is recorded yet, so nothing "
                      "to roll back to: the hosts hold what the failed apply left; fix the "
                      "layout and run `vlaninfra up` again (or `pulumi destroy`)")
    control = _rollback_control(target)
    if not step.applied:  # the program recorded nothing: record the failed attempt now
        control["attempt"] = {"time": _now(), "by": who(), "action": "up",
                              "status": "apply-failed", "layout": None, "allocations": None,
                              "containers": None, "summary": "",
                              "failed": (step.error or "").strip().splitlines()[-5:],
                              "rollback_to": None}
    back = _apply(s, f"rollback to version {target['version']}",
                  f"vlaninfra rollback to {target['version']} (automatic)", control)
    final = (f"version {target['version']}'s layout is back on the hosts, verified; the stack "
             "config still holds the failed change: fix it and run `vlaninfra up` again"
             if back.ok else "the rollback did not verify either: inspect the hosts "
             "(`vlaninfra history`, `pulumi refresh`)")
    return Report(stack, "up", (step, back), final)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def rollback(stack: str, *, to: int | None = None, engine: Engine | None = None,
             cwd: Path | None = None, confirm: Confirm | None = None,
             extra: Mapping[str, Any] | None = None) -> Report:
    """Applies recorded version `to` (default: the last verified version before the current
    one) with its allocations pinned, verifies and records it.

    Example: ``rollback("lab", to=3).ok``
    """
    s = _stack(stack, engine, cwd)
    records = _records(s)
    if not records:
        raise RolloutError(f"stack {stack} has no recorded versions yet: nothing to roll back "
                           "to (run `vlaninfra up` first)")
    current = int(records[-1]["version"])
    if to is None:
        target = _last_verified(records, before=current)
        if target is None:
            raise RolloutError(f"stack {stack}: no verified version before the current one "
                               f"({current}); see `vlaninfra history --stack {stack}`")
    else:
        found = [r for r in records if int(r.get("version", -1)) == to]
        known = ", ".join(str(r.get("version")) for r in records)
        if not found:
            raise RolloutError(f"stack {stack}: no version {to} (known: {known})")
        target = found[0]
        if target.get("layout") is None:
            raise RolloutError(f"stack {stack}: version {to} keeps no layout (status "
                               f"{target.get('status')}); roll back to a verified one: "
                               f"see `vlaninfra history --stack {stack}`")
        if target.get("allocations") is None:
            raise RolloutError(f"stack {stack}: version {to} keeps no allocations, so its "
                               "addresses cannot be restored exactly; nothing was changed: "
                               f"roll back to another version (`vlaninfra history --stack "
                               f"{stack}`)")
    control = {**_rollback_control(target), **(extra or {})}
    _preview(s, control, confirm)
    step = _apply(s, f"rollback to version {target['version']}",
                  f"vlaninfra rollback to {target['version']}", control)
    final = (f"version {target['version']}'s layout is on the hosts, verified (recorded as "
             f"version {step.version})" if step.ok else "the rollback did not verify: "
             "inspect the hosts (`vlaninfra history`, `pulumi refresh`)")
    return Report(stack, "rollback", (step,), final)
