"""Verified apply and rollback, as functions a program or CI job calls (`vlaninfra up`,
`vlaninfra rollback` and `vlaninfra history` are thin commands over them).

`up`: preview, apply with the real engine, verify through the agents, record; when the apply
fails part way or verification fails, apply the last verified record again (its layout, its
allocations pinned), verify it, and report. `rollback`: apply a recorded version, verified.
The records live in the stack's state (`vlaninfra.record`), so neither needs a git checkout.

One apply is two engine runs of the same program (`vlaninfra.record` has the details):
1. ``pulumi up``: the change, recorded as version N with status `applied`;
2. the finalize run, ``pulumi up --target <the stack resource> --expect-no-changes``: the
   program plans version N again with its recorded allocations, verifies through the agents
   and sets version N's status (`verified` or `failed-verification`) in place. The engine
   changes no resource in it (nothing but the stack is targeted), so verification sees the
   state the whole first run left, its deletes included.
A failed run 1 is recorded as `apply-failed` at once (`pulumi stack export`/`import` of the
record output: the hosts are not touched; not atomic against a concurrent run, the engine's
lock is not held), with or without a rollback. A finalize run costs about 2 s plus the checks
on the 4-container lab stack. When run 1 was warned of pending creates a killed run left, they
are dropped (`stack export`/`import` again) once run 1 has recorded every one's resource.

Rollback without a version goes to `rollback_target`: the newest verified version older than
the one the hosts hold now (a rollback record counts as the version it restored), skipping
versions whose layout and allocations equal what is there.

Example::

    report = up("prod", engine=Engine(project_root()))
    print(report.text()); sys.exit(0 if report.ok else 1)

Parts: `_stack` (engine runs with a control file, records read back, edits of the state: a
failed apply recorded, a killed run's pending creates dropped), `_report` (each step and the
run's report, the history table); this module holds the flow of `up` and `rollback` and how
they choose the version to return to.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from vlaninfra.engine import Engine, EngineError, StackLockedError
from vlaninfra.record import REFUSED, who
from vlaninfra.verify import Verification

from ._report import Report, Step, attempt, left_by, render_history
from ._stack import (
    RolloutError,
    Stack,
    history,
    interrupted_creates,
    read_records,
    read_report,
    record_failure,
    settle_pending_creates,
    stack_of,
    stack_urn,
    write_temp,
)

__all__ = [
    "Confirm",
    "Report",
    "RolloutError",
    "Stack",
    "Step",
    "attempt",
    "history",
    "last_verified",
    "left_by",
    "read_records",
    "read_report",
    "render_history",
    "rollback",
    "rollback_target",
    "stack_of",
    "stack_urn",
    "up",
    "write_temp",
]

Confirm = Callable[[str], bool]
"""Shown the preview; True to go on."""


def last_verified(records: Sequence[Mapping[str, Any]],
                  before: int | None = None) -> Mapping[str, Any] | None:
    """The newest verified record (older than version `before`) that keeps its layout and
    allocations: what a failed change returns to."""
    return next((r for r in reversed(records)
                 if r.get("status") == "verified" and r.get("layout") is not None
                 and r.get("allocations") is not None
                 and (before is None or int(r["version"]) < before)), None)


def rollback_target(records: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """Where `rollback` without a version goes: the newest verified version older than the one
    the hosts hold now (the newest record; a rollback record counts as the version it restored),
    skipping versions whose layout and allocations equal the newest record's (nothing to undo).

    Example: versions 1, 2 verified, 3 failed, 4 = rollback to 2 → version 1.
    """
    if not records:
        return None
    now = records[-1]
    origin = int(now.get("rollback_to") or now["version"])
    same = ("layout", "allocations")
    return next((r for r in reversed(records)
                 if r.get("status") == "verified" and r.get("layout") is not None
                 and r.get("allocations") is not None and int(r["version"]) < origin
                 and any(r.get(k) != now.get(k) for k in same)), None)


def _last(records: Sequence[Mapping[str, Any]]) -> int:
    return max((int(r["version"]) for r in records), default=0)


def _apply(s: Stack, what: str, message: str, control: dict[str, Any], last: int) -> Step:
    """Run 1 (apply, recorded as `applied`), then the finalize run (verify, status in place).
    A failed run 1 is recorded as `apply-failed` before this returns."""
    started = time.monotonic()
    control = {**control, "phase": "apply", "last": last, "by": who(),
               "run": secrets.token_hex(6)}
    try:
        # --json: an error comes back as the engine's diagnostics, not the display's tail.
        out = s.run("up", "--yes", "--skip-preview", "--json", "--message", message,
                    control=control)
    except StackLockedError:  # another run holds the stack: refuse, never roll back over it
        raise
    except EngineError as err:
        if REFUSED in str(err):  # e.g. another run added a version since ours read them
            raise RolloutError(f"stack {s.name}: {what} was refused before any change, so "
                               f"nothing was changed or recorded:\n{err}") from None
        note = record_failure(s, last, control, str(err))
        return Step(what, False, str(err) + note, None, time.monotonic() - started)
    killed = interrupted_creates(out)
    unsettled = _settle(s, killed) if killed else None  # a killed run's pending creates
    # The program refuses unless it read exactly versions up to `last`, and appends one.
    verification, error, took = _finalize(s, last + 1)
    return Step(what, True, error, verification, time.monotonic() - started, last + 1, took,
                notes=(unsettled,) if unsettled else ())


def _settle(s: Stack, killed: set[str]) -> str | None:
    """Drops a killed run's pending creates `killed` once this apply recorded them all
    (`settle_pending_creates`); returns, for the report, which it could not and what to do.
    Never fails the apply: the change is made and recorded by now."""
    try:
        left = settle_pending_creates(s, killed)
    except Exception as err:  # best effort: the apply went through
        return (f"the pending creates a killed run left could not be dropped "
                f"({' '.join(str(err).split())}); pulumi warns of them until `pulumi refresh "
                f"--clear-pending-creates --stack {s.name}` drops them")
    if left:
        return (f"a killed run was creating {', '.join(left)}, not in the state; what it made "
                "may be on the hosts: remove it by hand, then drop the pending creates with "
                f"`pulumi refresh --clear-pending-creates --stack {s.name}`")
    return None


def _finalize(s: Stack, version: int) -> tuple[Verification | None, str | None, float]:
    """The finalize run: verifies version `version` and sets its status; no resource changes."""
    report = write_temp({})
    started = time.monotonic()
    try:
        s.run("up", "--yes", "--skip-preview", "--json", "--target", stack_urn(s),
              "--expect-no-changes", "--message", f"vlaninfra verify version {version}",
              control={"phase": "finalize", "version": version, "last": version,
                       "report": report, "by": who()})
        data = read_report(report)
    except EngineError as err:
        return None, f"the verification run failed, so version {version} stays unverified:\n" \
            f"{err}", time.monotonic() - started
    finally:
        Path(report).unlink(missing_ok=True)
    took = time.monotonic() - started
    if not data:
        return None, ("the program did not verify (is the stack's program vlaninfra.program, "
                      "and this vlaninfra version?)"), took
    return Verification.from_json(data), None, took


def _preview(s: Stack, control: Mapping[str, Any], confirm: Confirm | None) -> None:
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
    (`vlaninfra.confirm`: the hosts' guards). Raises `StackLockedError`, with nothing changed,
    when another run holds the stack's lock. Example: ``up("lab", rollback=False).ok``
    """
    s = stack_of(stack, engine, cwd)
    before = read_records(s)
    _preview(s, {"action": "up", "last": _last(before)}, confirm)
    step = _apply(s, "apply", "vlaninfra up", {"action": "up", **(extra or {})}, _last(before))
    if step.ok:
        return Report(stack, "up", (step,), f"version {step.version} is on the hosts, verified")
    target = last_verified(before)
    if not rollback:
        return Report(stack, "up", (step,), "the failed change is left on the hosts for "
                      "inspection (--no-rollback); `vlaninfra rollback` returns to version "
                      f"{target['version']}" if target else "the failed change is left on "
                      "the hosts (--no-rollback); no verified version to return to")
    if target is None:
        return Report(stack, "up", (step,), "no verified version is recorded yet, so nothing "
                      "to roll back to: the hosts hold what the failed apply left; fix the "
                      "layout and run `vlaninfra up` again (or `pulumi destroy`)")
    try:
        last = _last(read_records(s))
    except RolloutError as err:
        return Report(stack, "up", (step,), f"not rolled back: the records could not be read "
                      f"after the failed change ({err}); run `vlaninfra rollback --stack "
                      f"{stack} --to {target['version']}` once the backend answers")
    what = f"rollback to version {target['version']}"
    back = attempt(what, lambda: _apply(s, what, f"vlaninfra rollback to {target['version']} "
                                        "(automatic)", _rollback_control(target), last))
    again = f"`vlaninfra rollback --stack {stack} --to {target['version']}`"
    if back.ok:
        final = (f"version {target['version']}'s layout is back on the hosts, verified; the "
                 "stack config still holds the failed change: fix it and run `vlaninfra up` "
                 "again")
    elif not back.started:
        final = (f"NOT rolled back (the rollback was refused, see above): the hosts hold "
                 f"{left_by(step)}; once the cause is gone, run {again}")
    else:
        final = (f"the rollback {'did not verify' if back.applied else 'failed'} too: the hosts "
                 f"hold {left_by(back)}; inspect them (`vlaninfra history`, `pulumi refresh`), "
                 f"then run {again}")
    return Report(stack, "up", (step, back), final)


def rollback(stack: str, *, to: int | None = None, engine: Engine | None = None,
             cwd: Path | None = None, confirm: Confirm | None = None,
             extra: Mapping[str, Any] | None = None) -> Report:
    """Applies recorded version `to` (default: `rollback_target`) with its allocations pinned,
    verifies and records it; `extra` goes into the apply's control file (as for `up`).

    Example: ``rollback("lab", to=3).ok``
    """
    s = stack_of(stack, engine, cwd)
    records = read_records(s)
    if not records:
        raise RolloutError(f"stack {stack} has no recorded versions yet: nothing to roll back "
                           "to (run `vlaninfra up` first)")
    current = int(records[-1]["version"])
    if to is None:
        target = rollback_target(records)
        if target is None:
            raise RolloutError(f"stack {stack}: no verified version before the one on the "
                               f"hosts (version {current}); see `vlaninfra history --stack "
                               f"{stack}`")
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
    _preview(s, {**control, "last": current}, confirm)
    step = _apply(s, f"rollback to version {target['version']}",
                  f"vlaninfra rollback to {target['version']}", control, current)
    final = (f"version {target['version']}'s layout is on the hosts, verified (recorded as "
             f"version {step.version})" if step.ok else f"the rollback "
             f"{'did not verify' if step.applied else 'failed'}: the hosts hold "
             f"{left_by(step)}; inspect them (`vlaninfra history`, `pulumi refresh`), then run "
             f"`vlaninfra rollback --stack {stack} --to {target['version']}` again")
    return Report(stack, "rollback", (step,), final)
