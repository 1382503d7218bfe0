"""Commit-confirmed windows in the records and in the program (`vlaninfra.confirm` has the
controller's flow): durations, which record is pending and how runs settle it, and, in the
program's run, the hosts' guards armed or disarmed before any resource is registered.

Example (the program)::

    refuse_unguarded(records, ctl, "prod")        # an apply the guards would undo: refused
    guard_hosts(ctl, members, config, records, members_of)
"""

from __future__ import annotations

import datetime
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from vlaninfra.errors import VlanInfraError
from vlaninfra.rollout import RolloutError
from vlaninfra.verify import Row, Verification

__all__ = [
    "GUARD",
    "MAX_WINDOW",
    "MIN_WINDOW",
    "epoch",
    "expired",
    "guard_hosts",
    "iso",
    "mark_pending",
    "parse_duration",
    "pending",
    "refuse_unguarded",
    "settle",
]

GUARD = "guard"
"""The control file's key for the guards: ``{"arm": {token, seconds, return_to}}`` or
``{"disarm": {token, required}}``."""
MIN_WINDOW = 10.0
MAX_WINDOW = 86400.0
_ARMED: dict[str, float] = {}
"""In the program: the deadline (epoch) of the guards it armed, by token."""
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


def iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def epoch(iso: str) -> float:
    return datetime.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def pending(records: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The newest record when it is a change waiting for `confirm`, else None."""
    last = records[-1] if records else None
    return last if last is not None and last.get("status") == "pending" else None


def expired(record: Mapping[str, Any], now: float | None = None) -> bool:
    return (time.time() if now is None else now) >= epoch(str(record["deadline"]))


def mark_pending(new: dict[str, Any], ctl: Any) -> None:
    """In the program's apply run: the record of a windowed apply carries its deadline, the
    guards' token and the version it returns to; the finalize run, verified, makes it
    ``pending`` until confirmed (`vlaninfra.record.finalized`)."""
    arm = (getattr(ctl, "guard", None) or {}).get("arm")
    if not arm or arm["token"] not in _ARMED:
        return
    new.update(deadline=iso(_ARMED[arm["token"]]), token=arm["token"],
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
                r.update(status="verified", confirmed=iso(time.time()))
        elif ctl.action in ("up", "rollback"):
            r.update(status="expired" if expired(r) else
                     "rolled-back" if ctl.action == "rollback" else "superseded",
                     settled=iso(time.time()))
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
            if expired(p) else f"until {p['deadline']}")
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
                or r.get("status") == "verified" or expired(r):
            continue  # no window, a confirmed one (its guards are off) or one that ended
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
    from vlaninfra.providers._host import CONNECTION, target_of
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
