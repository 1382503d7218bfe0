"""What `up` and `rollback` report: one `Step` per apply (applied, verified, how long) and the
`Report` of the whole run, with the text the commands print."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vlaninfra._text import table
from vlaninfra.errors import VlanInfraError
from vlaninfra.verify import Verification

__all__ = ["Report", "Step", "attempt", "left_by", "render_history"]


@dataclass(frozen=True)
class Step:
    """One apply: what it was, whether it went through, its verification."""

    what: str
    applied: bool
    error: str | None
    verification: Verification | None
    seconds: float
    version: int | None = None
    finalize_seconds: float = 0.0
    """How long the finalize (verification) run took, included in `seconds`."""
    started: bool = True
    """False: refused before it changed anything (`error` says why), e.g. the stack was locked
    for a rollback after a failed change."""
    notes: tuple[str, ...] = ()
    """What needs the user's hand although the step went through (a killed run's pending
    creates that could not be dropped)."""

    @property
    def ok(self) -> bool:
        # Every apply asks the program to verify: no verification is a failure, not a pass.
        return self.applied and self.verification is not None and self.verification.ok

    def lines(self) -> list[str]:
        return [*self._outcome(), *(f"note: {n}" for n in self.notes)]

    def _outcome(self) -> list[str]:
        took = f"{self.seconds:.1f} s"
        if not self.started:
            return [f"{self.what}: NOT RUN (this step itself changed nothing):",
                    *_indent(self.error or "")]
        if not self.applied:
            return [f"{self.what}: the apply FAILED after {took}:", *_indent(self.error or "")]
        recorded = f" (recorded as version {self.version})" if self.version else ""
        v = self.verification
        if v is None:
            return [f"{self.what}: applied in {took}{recorded}, not verified:",
                    *_indent(self.error or "")]
        took += f", of which verification run {self.finalize_seconds:.1f} s"
        if v.ok:
            return [f"{self.what}: applied and verified in {took}{recorded}: "
                    f"{len(v.rows)} checks passed ({v.seconds:.1f} s)", *_indent(v.table())]
        return [f"{self.what}: applied in {took}{recorded}, verification FAILED "
                f"({len(v.failed)} of {len(v.rows)} checks):", *_indent(v.table())]


def _indent(text: str) -> list[str]:
    return ["    " + line for line in text.strip("\n").splitlines()]


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


def attempt(what: str, apply: Callable[[], Step]) -> Step:
    """`apply()`, or a step that did not run when it was refused (`VlanInfraError`): after an
    earlier step changed the hosts, a refused rollback is a failure to report, never a
    "nothing was changed"."""
    started = time.monotonic()
    try:
        return apply()
    except VlanInfraError as err:
        return Step(what, False, str(err), None, time.monotonic() - started, started=False)


def left_by(step: Step) -> str:
    """What a failed or unverified `step` left on the hosts, for a report's final state."""
    if not step.started:
        return "what was there before it"
    if not step.applied:
        return (f"whatever its failed apply left ({step.what}: part of it may be applied; "
                "recorded as apply-failed in `vlaninfra history`)")
    state = "not verified" if step.verification is None else "verification FAILED"
    return f"version {step.version} ({step.what}, {state})"


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
