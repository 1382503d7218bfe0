"""Commit confirmed: `vlaninfra up --confirm-within DURATION` and `vlaninfra confirm`.

A change applied with a window stays *pending*: unless `vlaninfra confirm --stack S` comes
before the deadline, it is undone, also when the controller lost its connection to the hosts
(the change may have cut it). Two parts aim at the same prior state, so their order does not
matter:

- **the hosts** (`vlaninfra.host.guard`): before the apply, the program asks every host and
  managed router once to arm a guard (a snapshot of the stack's links and proto-57 routes,
  and a detached restorer); at the deadline each puts its own plumbing back, reachable or
  not;
- **the controller**: a detached watcher, started by `up` once the change is verified and
  pending, applies the version the change left (`return_to`, the last verified one) again at
  the deadline plus `WATCH_GRACE`, when the record is still pending. Containers and networks
  come back this way, once the host answers. Any later `vlaninfra up`, `rollback` or
  `confirm` that finds an expired pending record says so and does that rollback itself first
  (the watcher may have died with the machine).

The record of the change gets status ``pending`` with its ``deadline``, ``token`` (the
guards') and ``return_to``; `confirm` disarms the guards on every host (a run of the program
like the finalize run: that version's own layout, only the stack resource targeted) and marks
it ``verified`` with the time ``confirmed``;
otherwise it ends ``expired``, ``rolled-back`` (a `vlaninfra rollback` in the window) or
``superseded``. While one change is pending, `vlaninfra up` is refused: confirm or roll back
first. Every other `vlaninfra up` or `rollback` disarms whatever guard of the stack is still
armed before it applies (one round trip per host, in the program that verifies anyway), so an
old window never undoes a newer change; a rollback to the very version the guards keep leaves
them armed (they restore the same state). The window counts from the arming, at the start of
the apply run.

Example::

    report = up("prod", "60s")            # pending: vlaninfra confirm --stack prod
    confirm("prod")                       # kept; without it: rolled back after 60 s
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from vlaninfra.engine import Engine, EngineError, is_lab_stack, project_root, stack_file
from vlaninfra.errors import VlanInfraError
from vlaninfra.record import last_applied, who
from vlaninfra.rollout import (
    Confirm,
    Report,
    RolloutError,
    Step,
    _last_verified,
    _records,
    _Stack,
    _stack,
    _stack_urn,
    _write_temp,
    attempt,
    left_by,
    read_report,
    rollback_target,
)
from vlaninfra.rollout import rollback as _rollback
from vlaninfra.rollout import up as _up
from vlaninfra.verify import Row, Verification

__all__ = [
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

GUARD = "guard"
"""The control file's key for the guards: ``{"arm": {token, seconds, return_to}}`` or
``{"disarm": {token, required}}``."""
MIN_WINDOW = 10.0
MAX_WINDOW = 86400.0
WATCH_GRACE = 2.0
"""Seconds after the deadline before the controller rolls back: the hosts have restored
their plumbing by then, so the two never change one link at the same time."""
_ARMED: dict[str, float] = {}
"""In the program: the deadline (epoch) of the guards it armed, by token."""
_LOCK_RETRY = 600.0
_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


# -- durations and records (pure) -------------------------------------------------------------


def parse_duration(text: str) -> float:
    """Seconds in ``90``, ``60s``, ``5m``, ``1m30s``, ``2h``; between `MIN_WINDOW` and
    `MAX_WINDOW`, else `RolloutError`.

    Example: ``parse_duration("1m30s")`` → ``90.0``
    """
    value = text.strip().lower()
    match = _DURATION.fullmatch(value) if value else None
    if value.isdigit():
        seconds = float(value)
    elif match is not None and any(match.groups()):
        h, m, s = (int(g or 0) for g in match.groups())
        seconds = float(h * 3600 + m * 60 + s)
    else:
        raise RolloutError(f"--confirm-within {text!r} is not a duration: give e.g. 60s, 5m or "
                           "1m30s; nothing was changed")
    if not MIN_WINDOW <= seconds <= MAX_WINDOW:
        raise RolloutError(f"--confirm-within {text!r}: the window must be between "
                           f"{MIN_WINDOW:.0f}s and {MAX_WINDOW / 3600:.0f}h, and longer than an "
                           "apply takes (it counts from the start of the apply); nothing was "
                           "changed")
    return seconds


def _iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def _epoch(iso: str) -> float:
    return datetime.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def pending(records: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The newest record when it is a change waiting for `confirm`, else None."""
    last = records[-1] if records else None
    return last if last is not None and last.get("status") == "pending" else None


def _expired(record: Mapping[str, Any], now: float | None = None) -> bool:
    return (time.time() if now is None else now) >= _epoch(str(record["deadline"]))


def mark_pending(new: dict[str, Any], ctl: Any) -> None:
    """In the program's apply run: the record of a windowed apply carries its deadline, the
    guards' token and the version it returns to; the finalize run, verified, makes it
    ``pending`` until confirmed (`vlaninfra.record.finalized`)."""
    arm = (getattr(ctl, "guard", None) or {}).get("arm")
    if not arm or arm["token"] not in _ARMED:
        return
    new.update(deadline=_iso(_ARMED[arm["token"]]), token=arm["token"],
               return_to=arm.get("return_to"))


def settle(records: list[dict[str, Any]], ctl: Any) -> list[dict[str, Any]]:
    """In the program: a `confirm` run marks its pending record verified; an `up` or
    `rollback` run ends any pending one (``expired`` past its deadline, else ``rolled-back``
    or ``superseded``). A plain `pulumi up` leaves it pending."""
    disarm = (getattr(ctl, "guard", None) or {}).get("disarm") or {}
    for r in records:
        if r.get("status") != "pending":
            continue
        if ctl.action == "confirm":
            if r.get("token") == disarm.get("token"):
                r.update(status="verified", confirmed=_iso(time.time()))
        elif ctl.action in ("up", "rollback"):
            r.update(status="expired" if _expired(r) else
                     "rolled-back" if ctl.action == "rollback" else "superseded",
                     settled=_iso(time.time()))
    return records


# -- in the program: arm or disarm every host's guard ----------------------------------------


def refuse_unguarded(records: Sequence[Mapping[str, Any]], ctl: Any, stack: str) -> None:
    """In the program's apply run (not a preview): while the newest record is a change
    pending confirmation, a run that neither handles its guards (``ctl.guard``) nor returns to
    the very version they keep (a rollback to its `return_to`) is refused, nothing changed: its
    change would be undone by the hosts' guards at the deadline. So a plain `pulumi up` (or
    `vlaninfra.rollout.up` without a window) cannot be silently undone."""
    p = pending(records)
    if p is None or getattr(ctl, "guard", None):
        return
    if ctl.action == "rollback" and ctl.rollback_to == p.get("return_to"):
        return
    when = (f"its window ended at {p['deadline']} and it is not rolled back yet"
            if _expired(p) else f"until {p['deadline']}")
    run = "a plain `pulumi up`" if ctl.action == "pulumi up" else f"this {ctl.action}"
    raise VlanInfraError(
        f"version {p['version']} was applied with --confirm-within and is pending "
        f"confirmation ({when}): {run} would be undone by the hosts' guards. Confirm it "
        f"(`vlaninfra confirm --stack {stack}`) or roll it back (`vlaninfra rollback --stack "
        f"{stack}`) first; nothing was changed")


def _identity(host: Any) -> str:
    try:
        return json.dumps(host.connection(), sort_keys=True, default=str)
    except ValueError:
        return f"?{host.name}"


def _dropped(ctl: Any, members: Mapping[str, Any], records: Sequence[Mapping[str, Any]],
             members_of: Callable[[Any], Mapping[str, Any]] | None) -> dict[str, Any]:
    """The hosts and routers whose guard a window still running may keep armed (they were
    in its layout) but that this apply's layout no longer has: the apply that drops them
    disarms them, or their restorers would later put plumbing back on a host the stack no
    longer manages."""
    if ctl.phase != "apply" or members_of is None:
        return {}
    now = {_identity(m) for m in members.values()}
    out: dict[str, Any] = {}
    for r in records:
        if not (r.get("token") and r.get("deadline") and r.get("layout") is not None) \
                or _expired(r):
            continue
        try:
            theirs = members_of(r["layout"])
        except VlanInfraError as err:
            raise VlanInfraError(f"cannot tell which hosts version {r['version']}'s window "
                                 f"armed ({err})") from None
        out.update({f"{k} of version {r['version']}": m for k, m in theirs.items()
                    if _identity(m) not in now})
    return out


def _each(members: Mapping[str, Any], config: Callable[[str], Any], owner: str, op: str,
          **args: Any) -> dict[str, tuple[bool, float, Any]]:
    """Agent op `op` on every member at once: ``(ok, seconds, result or error)`` by key."""
    from vlaninfra.providers._base import CONNECTION, target_of
    from vlaninfra.transport import agent_for

    def one(key: str) -> tuple[bool, float, Any]:
        started = time.monotonic()
        try:
            agent = agent_for(target_of({CONNECTION: members[key].connection()}, config))
            result = agent.call(op, owner=owner, **args)
            return True, time.monotonic() - started, result
        except VlanInfraError as err:
            return False, time.monotonic() - started, str(err)

    with ThreadPoolExecutor(max_workers=max(1, min(16, len(members)))) as pool:
        return dict(zip(members, pool.map(one, members), strict=True))


def guard_hosts(ctl: Any, members: Mapping[str, Any], config: Callable[[str], Any],
                records: Sequence[Mapping[str, Any]] = (),
                members_of: Callable[[Any], Mapping[str, Any]] | None = None) -> None:
    """Before any resource is registered: arm (or disarm) the guard of this stack on every
    host and managed router (`members`: config key of its ssh settings → `DockerHost`), as
    ``ctl.guard`` asks. An arm that fails anywhere fails the run, nothing changed (the hosts
    already armed are disarmed again); a required disarm that fails, or finds a host that
    already restored, fails it too (the change stays pending). Any apply also disarms the
    hosts a running window armed that its layout drops (`records`: the stack's records;
    `members_of(layout)`: the members of a recorded layout). A preview does nothing."""
    import pulumi

    asked = getattr(ctl, "guard", None) or {}
    if pulumi.runtime.is_dry_run():
        return
    owner = f"{pulumi.get_project()}/{pulumi.get_stack()}"
    dropped = _dropped(ctl, members, records, members_of)
    for k, (ok, _, r) in _each(dropped, config, owner, "guard.disarm").items():
        if ok:
            pulumi.log.info(f"confirm guard: {dropped[k].name} ({k}) is no longer in the "
                            f"layout: {'disarmed' if r.get('disarmed') else 'none armed'}")
        else:
            pulumi.log.warn(f"confirm guard: {dropped[k].name} ({k}) is no longer in the "
                            f"layout, but its guard could not be disarmed ({r}): until its "
                            "deadline it may put this stack's plumbing back there")
    if not asked or not members:
        return

    def name(key: str) -> str:
        return f"{members[key].name} ({key})"

    if "arm" in asked:
        arm = asked["arm"]
        seconds = float(arm["seconds"])
        done = _each(members, config, owner, "guard.arm", token=arm["token"], seconds=seconds)
        # Each host counts its window from when its arm arrived: the recorded deadline (and
        # the watcher's, WATCH_GRACE later) comes after every host's.
        _ARMED[arm["token"]] = time.time() + seconds
        failed = [f"{name(k)}: {r}" for k, (ok, _, r) in done.items() if not ok]
        if failed:
            _each(members, config, owner, "guard.disarm", token=arm["token"])
            raise VlanInfraError("cannot arm the confirm guard on " + "; ".join(failed)
                                 + "; nothing was changed: make the host reachable (the guard "
                                 "needs root there: `sudo: true`), or apply without "
                                 "--confirm-within")
        return
    disarm = asked.get("disarm") or {}
    done = _each(members, config, owner, "guard.disarm", token=disarm.get("token"))
    rows, problems = [], []
    for k, (ok, took, r) in done.items():
        fired = r.get("fired") if ok and isinstance(r, dict) else None
        if not ok:
            detail = f"not reached: {r}"
        elif fired:
            detail = f"had already restored its plumbing at {fired.get('at')}"
        else:
            detail = "disarmed" if r.get("disarmed") else "no guard armed"
        good = ok and not fired
        if not good:
            problems.append(f"{name(k)}: {detail}")
        rows.append(Row(members[k].name, "guard", "disarm", good, took * 1000, detail))
    if ctl.action == "confirm" and ctl.report:
        Path(ctl.report).write_text(json.dumps(Verification(tuple(rows), 0.0).to_json()),
                                    encoding="utf-8")
    if problems and disarm.get("required"):
        raise VlanInfraError("cannot confirm: " + "; ".join(problems) + "; the change stays "
                             "pending and is rolled back at its deadline")
    for p in problems:
        pulumi.log.warn(f"confirm guard: {p}")


# -- the controller ---------------------------------------------------------------------------


def _watch_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/run/vlaninfra/watch")
    return Path.home() / ".cache" / "vlaninfra" / "watch"


def _lab_instance(s: _Stack) -> str | None:
    project = s.cwd or s.engine.root
    if not is_lab_stack(stack_file(project, s.name)):
        return None
    return os.environ.get("VLANINFRA_LAB_INSTANCE") or "default"


def _watch_base(s: _Stack) -> Path:
    project = (s.cwd or s.engine.root).resolve()
    digest = hashlib.sha256(f"{project}\0{s.name}".encode()).hexdigest()[:12]
    lab = _lab_instance(s)
    return _watch_dir() / (f"lab-{lab}-{digest}" if lab else digest)


def watcher_pidfiles(lab_instance: str) -> list[Path]:
    """The pidfiles of controller watchers of stacks on lab instance `lab_instance` (`lab
    down` ends them: their rollback could only fail once the lab is gone)."""
    folder = _watch_dir()
    return sorted(folder.glob(f"lab-{lab_instance}-*.pid")) if folder.is_dir() else []


def _start_watcher(s: _Stack, token: str, deadline: float) -> None:
    base = _watch_base(s)
    base.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    _stop_watcher(s, None)
    project = (s.cwd or s.engine.root).resolve()
    fd = os.open(f"{base}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with open(fd, "a", encoding="utf-8") as log:
        log.write(f"{_iso(time.time())} watching stack {s.name} (token {token}): rollback at "
                  f"{_iso(deadline + WATCH_GRACE)} unless confirmed\n")
        log.flush()
        proc = subprocess.Popen(
            [sys.executable, "-m", "vlaninfra.confirm", "watch", s.name, token, repr(deadline),
             str(project)], cwd=project, env=s.engine.env(s.name, s.cwd), stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    Path(f"{base}.pid").write_text(f"{proc.pid}\n")
    Path(f"{base}.json").write_text(json.dumps({"pid": proc.pid, "token": token,
                                                "deadline": deadline, "stack": s.name}))


def _stop_watcher(s: _Stack, token: str | None) -> None:
    base = _watch_base(s)
    try:
        info = json.loads(Path(f"{base}.json").read_text())
    except (OSError, ValueError):
        return
    if token is not None and info.get("token") != token:
        return
    from vlaninfra.lab._procs import recorded_pid

    pid = recorded_pid(Path(f"{base}.pid"))
    if pid is not None and pid != os.getpid():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    for suffix in (".pid", ".json"):
        Path(f"{base}{suffix}").unlink(missing_ok=True)


def _expire(s: _Stack, records: Sequence[Mapping[str, Any]],
            record: Mapping[str, Any]) -> tuple[Step, ...]:
    """Applies the version an expired pending change returns to (its guards aim at the same
    plumbing, so they are left as they are); the run marks the record expired."""
    to = record.get("return_to")
    if to is None:
        target = _last_verified(records, before=int(record["version"]))
        to = int(target["version"]) if target else None
    if to is None:
        raise RolloutError(f"stack {s.name}: version {record['version']} was not confirmed, "
                           "and no verified version is recorded to return to")
    return _rollback(s.name, to=int(to), engine=s.engine, cwd=s.cwd).steps


def _converge_expired(s: _Stack, records: list[dict[str, Any]]) -> tuple[Step, ...]:
    p = pending(records)
    if p is None or not _expired(p):
        return ()
    print(f"stack {s.name}: version {p['version']} was not confirmed by {p['deadline']}: "
          f"applying version {p.get('return_to')} again first", file=sys.stderr, flush=True)
    return _expire(s, records, p)


def _refuse_pending(s: _Stack, records: Sequence[Mapping[str, Any]]) -> None:
    p = pending(records)
    if p is not None:
        raise RolloutError(f"stack {s.name}: version {p['version']} is pending confirmation "
                           f"until {p['deadline']}: confirm it (`vlaninfra confirm --stack "
                           f"{s.name}`) or roll it back (`vlaninfra rollback --stack {s.name}`) "
                           "first; nothing was changed")


def _refresh_if_restored(s: _Stack, records: Sequence[Mapping[str, Any]]) -> None:
    """After a windowed change that failed (its record carries the guards' token, and no
    verified version came after it: maybe only a failed rollback attempt), the hosts may
    have put their plumbing back without the stack's state knowing: `pulumi refresh` first,
    so the apply sees what is there (else re-applying the same change would do nothing)."""
    since = []
    for r in reversed(records):
        if r.get("status") == "verified" or (r.get("status") == "pending" and not _expired(r)):
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


def _after(s: _Stack, action: str, first: tuple[Step, ...],
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


def _watch_or_say(s: _Stack, token: str, deadline: float) -> str:
    """Starts the watcher; a note for the report when it cannot start."""
    try:
        _start_watcher(s, token, deadline)
    except OSError as err:
        return (f"; the watcher could not start ({err}), so if you do not confirm, run "
                f"`vlaninfra rollback --stack {s.name}` after {_iso(deadline)} (the hosts' "
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
    s = _stack(stack, engine, cwd)
    records = _records(s)
    first = _converge_expired(s, records)
    return _after(s, "up", first, lambda: _up_now(s, seconds, confirm, rollback,
                                                  _records(s) if first else records))


def _up_now(s: _Stack, seconds: float | None, confirm: Confirm | None, rollback: bool,
            records: list[dict[str, Any]]) -> Report:
    stack = s.name
    _refuse_pending(s, records)
    _refresh_if_restored(s, records)
    if seconds is None:
        return _up(stack, engine=s.engine, cwd=s.cwd, confirm=confirm, rollback=rollback,
                   extra=_DISARM)
    target = _last_verified(records)
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
        records = _records(s)
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
    if _expired(p):
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
    note = _watch_or_say(s, token, _epoch(str(p["deadline"])))
    return Report(stack, "up", report.steps,
                  f"version {p['version']} is on the hosts, verified, and PENDING until "
                  f"{p['deadline']}: run `vlaninfra confirm --stack {stack}` to keep it; "
                  f"otherwise the hosts put their plumbing back and version {back} is applied "
                  f"again{note}")


def _expire_step(s: _Stack, records: Sequence[Mapping[str, Any]],
                 record: Mapping[str, Any]) -> Step:
    steps = _expire(s, records, record)
    return steps[-1]


def rollback(stack: str, *, to: int | None = None, engine: Engine | None = None,
             cwd: Path | None = None, confirm: Confirm | None = None) -> Report:
    """`vlaninfra.rollout.rollback`, aware of pending changes: an expired one is rolled back
    first (that is the whole job when `to` is its return version, or None); guards that may
    be armed are disarmed unless the rollback goes to the very version they keep.

    Example: ``rollback("lab").ok``
    """
    s = _stack(stack, engine, cwd)
    records = _records(s)
    p = pending(records)
    first: tuple[Step, ...] = ()
    if p is not None and _expired(p):
        first = _converge_expired(s, records)
        if to is None or to == p.get("return_to"):
            return Report(stack, "rollback", first, f"version {p['version']} was not confirmed "
                          f"in time: version {p.get('return_to')}'s layout is back on the hosts"
                          + (", verified" if all(x.ok for x in first) else
                             f" (NOT verified: the hosts hold {left_by(first[-1])}; see above)"))
    return _after(s, "rollback", first, lambda: _rollback_now(
        s, to, confirm, p, _records(s) if first else records))


def _rollback_now(s: _Stack, to: int | None, confirm: Confirm | None,
                  p: Mapping[str, Any] | None, records: list[dict[str, Any]]) -> Report:
    target = to
    if target is None and records:
        found = rollback_target(records)
        target = int(found["version"]) if found else None
    same = p is not None and not _expired(p) and target == p.get("return_to")
    _refresh_if_restored(s, records)
    report = _rollback(s.name, to=to, engine=s.engine, cwd=s.cwd, confirm=confirm,
                       extra=None if same else _DISARM)
    if p is not None and report.ok:
        _stop_watcher(s, str(p.get("token")))
    return report


def confirm(stack: str, *, engine: Engine | None = None, cwd: Path | None = None) -> Report:
    """Keeps the pending change: disarms its guard on every host and marks it verified.
    Nothing pending is a `RolloutError` (nothing changed); a window already ended rolls back
    instead (the report is not ok).

    Example: ``confirm("lab").ok``
    """
    s = _stack(stack, engine, cwd)
    records = _records(s)
    p = pending(records)
    if p is None:
        last = (f"the last version, {records[-1]['version']}, is {records[-1].get('status')}"
                if records else "no version is recorded")
        raise RolloutError(f"stack {stack}: nothing is pending confirmation ({last}); nothing "
                           "was changed")
    what = f"confirm version {p['version']}"
    if _expired(p):
        late = Step(what, False, f"its window ended at {p['deadline']}", None, 0.0)
        steps = _converge_expired(s, records)
        return Report(stack, "confirm", (late, *steps), f"too late: version {p['version']} was "
                      f"not confirmed by {p['deadline']}, so version {p.get('return_to')} was "
                      "applied again; run `vlaninfra up` to apply the change again")
    report = _write_temp({})
    version = int(p["version"])
    control = {"action": "confirm", "phase": "confirm", "version": version, "last": version,
               "report": report, "by": who(),
               GUARD: {"disarm": {"token": p["token"], "required": True}}}
    started = time.monotonic()
    try:
        # Like the finalize run: the pending version's own layout, no resource changed.
        s.run("up", "--yes", "--skip-preview", "--json", "--target", _stack_urn(s),
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
    _stop_watcher(s, str(p["token"]))
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
                   if not _expired(p) else
                   f"version {p['version']} was not confirmed by {p['deadline']} and is not "
                   f"rolled back yet: `vlaninfra rollback --stack {stack}` does it")
    log = Path(f"{_watch_base(_stack(stack, engine, cwd))}.log")
    if log.is_file():
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:]
        out.append(f"rollbacks at the deadline log to {log}" + (f"; last: {tail[0]}"
                                                                 if tail else ""))
    return out


# -- the watcher (a detached process of the controller) ---------------------------------------


def _watch(stack: str, token: str, deadline: float, project: Path) -> int:
    s = _stack(stack, Engine(project_root()), project)

    def say(text: str) -> None:
        print(f"{_iso(time.time())} {text}", flush=True)

    try:
        while (left := deadline + WATCH_GRACE - time.time()) > 0:
            time.sleep(min(left, 5.0))
        give_up = time.monotonic() + _LOCK_RETRY
        while True:
            try:
                records = _records(s)
                p = pending(records)
                if p is None or p.get("token") != token:
                    say(f"stack {stack}: no change of token {token} is pending (confirmed, "
                        "rolled back or failed): nothing to do")
                    return 0
                say(f"stack {stack}: version {p['version']} was not confirmed by "
                    f"{p['deadline']}: applying version {p.get('return_to')} again")
                started = time.monotonic()
                steps = _expire(s, records, p)
                report = Report(stack, "rollback", steps, "")
                say(f"rollback took {time.monotonic() - started:.1f} s:\n{report.text()}")
                return 0 if report.ok else 1
            except VlanInfraError as err:
                if "locked" not in str(err) or time.monotonic() > give_up:
                    say(f"rollback failed: {err}")
                    return 1
                say("the stack is locked (another run): trying again in 5 s")
                time.sleep(5)
    finally:
        base = _watch_base(s)
        with contextlib.suppress(OSError, ValueError):
            if json.loads(Path(f"{base}.json").read_text()).get("token") == token:
                for suffix in (".pid", ".json"):
                    Path(f"{base}{suffix}").unlink(missing_ok=True)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "watch":
        sys.exit(_watch(sys.argv[2], sys.argv[3], float(sys.argv[4]), Path(sys.argv[5])))
    sys.exit("usage: python -m vlaninfra.confirm watch STACK TOKEN DEADLINE PROJECT")
