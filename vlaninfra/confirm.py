"""Commit confirmed: `vlaninfra up --confirm-within DURATION` and `vlaninfra confirm`.

A change applied with a window stays *pending*: unless `vlaninfra confirm --stack S` comes
before the deadline, it is undone, also when the controller lost its connection to the hosts
(the change may have cut it). Two parts aim at the same prior state, so their order does not
matter:

- **the hosts** (`vlaninfra.host.guard`; in the program: `vlaninfra.window.guard_hosts`): before
  the apply, the program asks every host and managed router once to arm a guard (a snapshot of
  the stack's links and proto-57 routes, and a detached restorer); at the deadline each puts its
  own plumbing back, reachable or not;
- **the controller**: a detached watcher (`vlaninfra.watcher`), started by `up` once the change
  is verified and pending, applies the version the change left (`return_to`, the last verified
  one) again at the deadline plus `WATCH_GRACE`, when the record is still pending. Containers
  and networks come back this way, once the host answers. Any later `vlaninfra up`, `rollback`
  or `confirm` that finds an expired pending record says so and does that rollback itself first
  (the watcher may have died with the machine).

The record of the change gets status ``pending`` with its ``deadline``, ``token`` (the guards')
and ``return_to``; `confirm` disarms the guards on every host (a run of the program like the
finalize run: that version's own layout, only the stack resource targeted) and marks it
``verified`` with the time ``confirmed``; otherwise it ends ``expired``, ``rolled-back`` (a
`vlaninfra rollback` in the window) or ``superseded``. While one change is pending, `vlaninfra
up` is refused: confirm or roll back first; the program itself refuses any other apply the
guards would undo (a plain `pulumi up`, `vlaninfra.rollout.up`), and an apply whose layout drops
a host a running window armed disarms that host's guard. Every other `vlaninfra up` or
`rollback` disarms whatever guard of the stack is still armed before it applies (one round trip
per host, in the program that verifies anyway), so an old window never undoes a newer change;
also a rollback to the very version the guards keep: once the window is settled no guard may
fire later and undo an apply that nothing refuses any more (a plain `pulumi up`).
The window counts from the arming, at the start of the apply run. Once a step changed the hosts,
a later refusal is reported with it (exit 1: what the hosts hold, what to run), never as
"nothing was changed".

Example::

    report = up("prod", "60s")            # pending: vlaninfra confirm --stack prod
    confirm("prod")                       # kept; without it: rolled back after 60 s
"""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from vlaninfra.engine import Engine, EngineError
from vlaninfra.errors import VlanInfraError
from vlaninfra.record import last_applied, who
from vlaninfra.rollout import (
    Confirm,
    Report,
    RolloutError,
    Stack,
    Step,
    attempt,
    last_verified,
    left_by,
    read_records,
    read_report,
    stack_of,
    stack_urn,
    write_temp,
)
from vlaninfra.rollout import rollback as _rollback
from vlaninfra.rollout import up as _up
from vlaninfra.verify import Verification
from vlaninfra.watcher import (
    WATCH_GRACE,
    expire,
    start_watcher,
    stop_watcher,
    watch_base,
    watcher_pidfiles,
)
from vlaninfra.window import (
    GUARD,
    MAX_WINDOW,
    MIN_WINDOW,
    epoch,
    expired,
    guard_hosts,
    iso,
    mark_pending,
    parse_duration,
    pending,
    settle,
)

__all__ = [  # the window's and the watcher's names too, as before they had modules
    "GUARD",
    "MAX_WINDOW",
    "MIN_WINDOW",
    "WATCH_GRACE",
    "confirm",
    "guard_hosts",
    "mark_pending",
    "notes",
    "parse_duration",
    "pending",
    "rollback",
    "settle",
    "up",
    "watcher_pidfiles",
]


def _converge_expired(s: Stack, records: list[dict[str, Any]]) -> tuple[Step, ...]:
    p = pending(records)
    if p is None or not expired(p):
        return ()
    print(f"stack {s.name}: version {p['version']} was not confirmed by {p['deadline']}: "
          f"applying version {p.get('return_to')} again first", file=sys.stderr, flush=True)
    return expire(s, records, p)


def _refuse_pending(s: Stack, records: Sequence[Mapping[str, Any]]) -> None:
    p = pending(records)
    if p is not None:
        raise RolloutError(f"stack {s.name}: version {p['version']} is pending confirmation "
                           f"until {p['deadline']}: confirm it (`vlaninfra confirm --stack "
                           f"{s.name}`) or roll it back (`vlaninfra rollback --stack {s.name}`) "
                           "first; nothing was changed")


def _refresh_if_restored(s: Stack, records: Sequence[Mapping[str, Any]]) -> None:
    """After a windowed change that failed (its record carries the guards' token, and no
    verified version came after it: maybe only a failed rollback attempt), the hosts may
    have put their plumbing back without the stack's state knowing: `pulumi refresh` first,
    so the apply sees what is there (else re-applying the same change would do nothing)."""
    since = []
    for r in reversed(records):
        if r.get("status") == "verified" or (r.get("status") == "pending" and not expired(r)):
            break
        since.append(r)
    last = next((r for r in since if r.get("token")), None)
    if last is None:
        return
    print(f"stack {s.name}: version {last['version']} ({last.get('status')}) was applied with "
          "--confirm-within, so the hosts may have put their plumbing back: refreshing the "
          "stack's state first", file=sys.stderr, flush=True)
    try:
        s.run("refresh", "--yes", "--skip-preview")
    except EngineError as err:
        raise RolloutError(f"stack {s.name}: cannot refresh its state from the hosts (are they "
                           f"reachable?); nothing was changed:\n{err}") from None


_DISARM = {GUARD: {"disarm": {"token": None, "required": False}}}
"""Before a run applies: any guard still armed (an earlier window's, maybe of a failed
attempt) must not undo this run's change. One round trip per host, in the program process
that verifies anyway."""


def _after(s: Stack, action: str, first: tuple[Step, ...],
           act: Callable[[], Report]) -> Report:
    """`act()`'s report after the steps `first` (an expired change rolled back): once those
    changed the hosts, a refusal of the rest is reported with them (exit 1, what the hosts
    hold, what to run), never as "nothing was changed"."""
    try:
        report = act()
    except VlanInfraError as err:
        if not first:
            raise
        held = (f"version {first[-1].what.rsplit(' ', 1)[-1]}'s layout, verified"
                if all(x.ok for x in first) else left_by(first[-1]))
        report = Report(s.name, action, (Step(action, False, str(err), None, 0.0,
                                              started=False),),
                        f"the change whose window had ended was rolled back first, so the "
                        f"hosts hold {held}; then the {action} itself was refused (see above): "
                        f"run `vlaninfra {action} --stack {s.name}` again once that is fixed")
    return Report(s.name, action, (*first, *report.steps), report.final)


def _watch_or_say(s: Stack, token: str, deadline: float) -> str:
    """Starts the watcher; a note for the report when it cannot start."""
    try:
        start_watcher(s, token, deadline)
    except OSError as err:
        return (f"; the watcher could not start ({err}), so if you do not confirm, run "
                f"`vlaninfra rollback --stack {s.name}` after {iso(deadline)} (the hosts' "
                "guards still put their plumbing back on their own)")
    return ""


def up(stack: str, within: str | float | None = None, *, engine: Engine | None = None,
       cwd: Path | None = None, confirm: Confirm | None = None,
       rollback: bool = True) -> Report:
    """`vlaninfra.rollout.up`, with a window when `within` is given (a duration, see
    `parse_duration`): verified, the change stays pending until `confirm`, and is undone after
    the window otherwise. An expired pending change is rolled back first; a pending one
    refuses the run.

    Example: ``up("lab", "60s").final`` → ``"version 4 is on the hosts ... PENDING until ..."``
    """
    seconds = None if within is None else (
        parse_duration(within) if isinstance(within, str) else parse_duration(f"{within:.0f}"))
    s = stack_of(stack, engine, cwd)
    records = read_records(s)
    first = _converge_expired(s, records)
    return _after(s, "up", first, lambda: _up_now(s, seconds, confirm, rollback,
                                                  read_records(s) if first else records))


def _up_now(s: Stack, seconds: float | None, confirm: Confirm | None, rollback: bool,
            records: list[dict[str, Any]]) -> Report:
    stack = s.name
    _refuse_pending(s, records)
    _refresh_if_restored(s, records)
    if seconds is None:
        return _up(stack, engine=s.engine, cwd=s.cwd, confirm=confirm, rollback=rollback,
                   extra=_DISARM)
    target = last_verified(records)
    if target is None:
        raise RolloutError(f"stack {stack}: --confirm-within needs a verified version to return "
                           "to, and none is recorded yet: run `vlaninfra up` first; nothing was "
                           "changed")
    on_hosts = last_applied(records)
    if on_hosts is None or on_hosts.get("version") != target.get("version"):
        # The guards keep what the hosts hold now; the watcher returns to `target`: the two
        # must be the same state, or an expired window leaves a mix of both.
        raise RolloutError(f"stack {stack}: --confirm-within needs the hosts to hold a verified "
                           f"version, but they hold version {(on_hosts or {}).get('version')} "
                           f"({(on_hosts or {}).get('status')}); run `vlaninfra up` (or "
                           f"`vlaninfra rollback --to {target['version']}`) first; nothing was "
                           "changed")
    token = secrets.token_hex(6)
    back = int(target["version"])
    report = _up(stack, engine=s.engine, cwd=s.cwd, confirm=confirm, rollback=rollback,
                 extra={GUARD: {"arm": {"token": token, "seconds": seconds, "return_to": back}}})
    if not report.ok:
        final = (f"{report.final}; the hosts' guards still put back version {back}'s plumbing "
                 f"when the window ends (no change where the rollback already did)")
        return Report(stack, "up", report.steps, final)
    try:
        records = read_records(s)
    except RolloutError as err:  # the change is on the hosts: the watcher must run anyway
        note = _watch_or_say(s, token, time.time() + seconds)
        return Report(stack, "up", report.steps, f"{report.final}, PENDING for about "
                      f"{seconds:.0f} s, but its record could not be read back ({err}): run "
                      f"`vlaninfra confirm --stack {stack}` to keep it; otherwise the hosts "
                      f"put their plumbing back and version {back} is applied again{note}")
    p = pending(records)
    if p is None or p.get("token") != token:
        return Report(stack, "up", report.steps, f"{report.final}; but the record is not "
                      "pending (another run?): see `vlaninfra history`")
    if expired(p):
        ended = Step(f"window of version {p['version']}", False,
                     f"it ended at {p['deadline']}, before the apply and its verification "
                     "did", None, 0.0)
        late = attempt(f"rollback to version {back}", lambda: _expire_step(s, records, p))
        return Report(stack, "up", (*report.steps, ended, late), (
            f"the window ended during the apply: version {back} was applied again; give a "
            "longer --confirm-within") if late.ok else (
            f"the window ended during the apply and the return to version {back} failed: the "
            f"hosts hold {left_by(late if late.started else report.steps[-1])} (their guards "
            f"put back version {back}'s plumbing); run `vlaninfra rollback --stack {stack} "
            f"--to {back}`"))
    note = _watch_or_say(s, token, epoch(str(p["deadline"])))
    return Report(stack, "up", report.steps,
                  f"version {p['version']} is on the hosts, verified, and PENDING until "
                  f"{p['deadline']}: run `vlaninfra confirm --stack {stack}` to keep it; "
                  f"otherwise the hosts put their plumbing back and version {back} is applied "
                  f"again{note}")


def _expire_step(s: Stack, records: Sequence[Mapping[str, Any]],
                 record: Mapping[str, Any]) -> Step:
    steps = expire(s, records, record)
    return steps[-1]


def rollback(stack: str, *, to: int | None = None, engine: Engine | None = None,
             cwd: Path | None = None, confirm: Confirm | None = None) -> Report:
    """`vlaninfra.rollout.rollback`, aware of pending changes: an expired one is rolled back
    first (that is the whole job when `to` is its return version, or None); guards that may
    be armed are disarmed before it applies, also when it goes to the very version they keep.

    Example: ``rollback("lab").ok``
    """
    s = stack_of(stack, engine, cwd)
    records = read_records(s)
    p = pending(records)
    first: tuple[Step, ...] = ()
    if p is not None and expired(p):
        first = _converge_expired(s, records)
        if to is None or to == p.get("return_to"):
            return Report(stack, "rollback", first, f"version {p['version']} was not confirmed "
                          f"in time: version {p.get('return_to')}'s layout is back on the hosts"
                          + (", verified" if all(x.ok for x in first) else
                             f" (NOT verified: the hosts hold {left_by(first[-1])}; see above)"))
    return _after(s, "rollback", first, lambda: _rollback_now(
        s, to, confirm, p, read_records(s) if first else records))


def _rollback_now(s: Stack, to: int | None, confirm: Confirm | None,
                  p: Mapping[str, Any] | None, records: list[dict[str, Any]]) -> Report:
    _refresh_if_restored(s, records)
    report = _rollback(s.name, to=to, engine=s.engine, cwd=s.cwd, confirm=confirm,
                       extra=_DISARM)
    if p is not None and report.ok:
        stop_watcher(s, str(p.get("token")))
    return report


def confirm(stack: str, *, engine: Engine | None = None, cwd: Path | None = None) -> Report:
    """Keeps the pending change: disarms its guard on every host and marks it verified.
    Nothing pending is a `RolloutError` (nothing changed); a window already ended rolls back
    instead (the report is not ok).

    Example: ``confirm("lab").ok``
    """
    s = stack_of(stack, engine, cwd)
    records = read_records(s)
    p = pending(records)
    if p is None:
        last = (f"the last version, {records[-1]['version']}, is {records[-1].get('status')}"
                if records else "no version is recorded")
        raise RolloutError(f"stack {stack}: nothing is pending confirmation ({last}); nothing "
                           "was changed")
    what = f"confirm version {p['version']}"
    if expired(p):
        late = Step(what, False, f"its window ended at {p['deadline']}", None, 0.0)
        steps = _converge_expired(s, records)
        return Report(stack, "confirm", (late, *steps), f"too late: version {p['version']} was "
                      f"not confirmed by {p['deadline']}, so version {p.get('return_to')} was "
                      "applied again; run `vlaninfra up` to apply the change again")
    report = write_temp({})
    version = int(p["version"])
    control = {"action": "confirm", "phase": "confirm", "version": version, "last": version,
               "report": report, "by": who(),
               GUARD: {"disarm": {"token": p["token"], "required": True}}}
    started = time.monotonic()
    try:
        # Like the finalize run: the pending version's own layout, no resource changed.
        s.run("up", "--yes", "--skip-preview", "--json", "--target", stack_urn(s),
              "--expect-no-changes", "--message", f"vlaninfra confirm {version}",
              control=control)
    except EngineError as err:
        return Report(stack, "confirm", (Step(what, False, str(err), None,
                                              time.monotonic() - started),),
                      f"version {p['version']} stays PENDING: at {p['deadline']} the hosts put "
                      f"their plumbing back and version {p.get('return_to')} is applied again; "
                      f"run `vlaninfra confirm --stack {stack}` again before then")
    finally:
        data = read_report(report)
        Path(report).unlink(missing_ok=True)
    stop_watcher(s, str(p["token"]))
    verification = Verification.from_json(data) if data else Verification((), 0.0)
    return Report(stack, "confirm", (Step(what, True, None, verification,
                                          time.monotonic() - started, int(p["version"])),),
                  f"version {p['version']} is confirmed and stays on the hosts (guards: "
                  + ", ".join(f"{r.where} {r.detail}" for r in verification.rows) + ")")


def notes(stack: str, records: Sequence[Mapping[str, Any]], *,
          engine: Engine | None = None, cwd: Path | None = None) -> list[str]:
    """Lines `vlaninfra history` adds: a pending change and its deadline, and this machine's
    watcher log for the stack."""
    out = []
    p = pending(records)
    if p is not None:
        out.append(f"version {p['version']} is pending confirmation until {p['deadline']}"
                   if not expired(p) else
                   f"version {p['version']} was not confirmed by {p['deadline']} and is not "
                   f"rolled back yet: `vlaninfra rollback --stack {stack}` does it")
    log = Path(f"{watch_base(stack_of(stack, engine, cwd))}.log")
    if log.is_file():
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:]
        out.append(f"rollbacks at the deadline log to {log}" + (f"; last: {tail[0]}"
                                                                 if tail else ""))
    return out
