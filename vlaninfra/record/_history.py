"""The records as data: what a new record holds, which allocations the next plan pins, which
records are kept (`prune`), and how an apply, a finalize run or a failed apply changes the
list. Pure: no engine, no Pulumi."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from vlaninfra.errors import VlanInfraError
from vlaninfra.layout import Plan

from ._control import FORMAT, Control

__all__ = [
    "KEEP_LAYOUTS",
    "KEEP_RECORDS",
    "check_exact",
    "finalized",
    "last_applied",
    "new_record",
    "next_records",
    "pins",
    "prune",
    "records_of",
    "summary",
    "target",
    "with_failure",
]

KEEP_RECORDS = 100
KEEP_LAYOUTS = 20


def records_of(output: Any) -> list[dict[str, Any]]:
    """The records in a `vlaninfra` stack output value (empty when absent or foreign)."""
    if not isinstance(output, Mapping) or output.get("format") != FORMAT:
        return []
    # The engine hands numbers back as floats (a layout's `port: 80` as 80.0).
    return [_whole(dict(r)) for r in output.get("records") or () if isinstance(r, Mapping)]


def _whole(value: Any) -> Any:
    """`value` with every whole float as an int, recursively."""
    if isinstance(value, dict):
        return {k: _whole(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_whole(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _canon(value: Any) -> Any:
    """`value` as it comes back from the engine's outputs: None-valued keys dropped, whole
    floats as ints, so a record compares equal to itself after a round trip."""
    if isinstance(value, Mapping):
        return {k: _canon(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_canon(v) for v in value]
    return _whole(value)


def target(config_sites: Callable[[], Any], records: Sequence[Mapping[str, Any]],
           ctl: Control) -> tuple[Any, dict[str, list[str]]]:
    """The layout to plan and the allocations to pin: record ``ctl.version``'s own (a finalize
    run), the controller's (a rollback), else the stack config's with `pins(records)`."""
    if ctl.phase in ("finalize", "confirm"):
        found = _version_of(records, ctl.version)
        if found is None or found.get("layout") is None or found.get("allocations") is None:
            raise VlanInfraError(f"version {ctl.version} is not recorded with its layout and "
                                 "allocations, so it cannot be verified; nothing was changed")
        return found["layout"], pins([found], Control())
    layout = ctl.layout if ctl.layout is not None else config_sites()
    return layout, pins(records, ctl)


def _version_of(records: Sequence[Mapping[str, Any]], version: int | None
                ) -> Mapping[str, Any] | None:
    return next((r for r in records if version is not None and r.get("version") == version),
                None)


def pins(records: Sequence[Mapping[str, Any]], ctl: Control) -> dict[str, list[str]]:
    """Allocations to keep: the controller's (a rollback's target), else those of the newest
    record whose layout reached the hosts, so no existing container moves."""
    if ctl.pins is not None:
        return {k: list(v) for k, v in ctl.pins.items()}
    r = last_applied(records)
    return {k: list(v) for k, v in r["allocations"].items()} if r is not None else {}


def last_applied(records: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The newest record whose layout reached the hosts (its allocations kept): what the hosts
    hold now, and whose allocations the next run pins. Example: ``last_applied(records)``"""
    return next((r for r in reversed(records)
                 if r.get("allocations") is not None and r.get("status") != "apply-failed"),
                None)


def summary(the_plan: Plan) -> str:
    """``2 hosts, 6 containers, 2 networks, 2 shims, 0 upstream routes``."""
    hosts = [h for s in the_plan.sites for h in s.hosts]
    return (f"{len(hosts)} hosts, {sum(len(h.containers) for h in hosts)} containers, "
            f"{len({n.name for h in hosts for n in h.networks})} networks, "
            f"{sum(len(h.shims) for h in hosts)} shims, "
            f"{sum(len(s.upstream_routes) for s in the_plan.sites)} upstream routes")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vlaninfra")
    except PackageNotFoundError:
        return "unknown"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _containers(the_plan: Plan) -> dict[str, dict[str, str | None]]:
    return {
        c.key: {"ipv4": str(c.ipv4) if c.ipv4 else None,
                "ipv6": str(c.ipv6) if c.ipv6 else None, "mac": c.mac}
        for s in the_plan.sites for h in s.hosts for c in h.containers
    }


def check_exact(records: Sequence[Mapping[str, Any]], ctl: Control, the_plan: Plan) -> None:
    """For a rollback (``ctl.rollback_to``) or a finalize run (``ctl.version``): raises if any
    container would not get the address and MAC that record holds (a pin that no longer
    holds), so nothing is changed, and a finalize run never verifies another plan than the
    one applied.

    Example: ``check_exact(records, Control(rollback_to=3), the_plan)``
    """
    version = ctl.version if ctl.phase in ("finalize", "confirm") else ctl.rollback_to
    if version is None:
        return
    doing = {"finalize": f"verifying version {version}",
             "confirm": f"confirming version {version}"}.get(
        ctl.phase, f"rolling back to version {version}")
    found = _version_of(records, version)
    if found is None or found.get("containers") is None:
        raise VlanInfraError(f"version {version} keeps no container addresses, so it "
                             "cannot be restored exactly; nothing was changed: roll back to "
                             "another verified version (`vlaninfra history`)")
    want, have = _canon(found["containers"]), _canon(_containers(the_plan))
    differ = sorted(k for k in want.keys() | have.keys() if want.get(k) != have.get(k))
    if differ:
        raise VlanInfraError(
            f"{doing} would not restore the recorded address "
            f"or MAC of {len(differ)} container(s): " + "; ".join(
                f"{k} (recorded {want.get(k)}, planned {have.get(k)})" for k in differ)
            + "; nothing was changed: fix the stack config and run `vlaninfra up`, or roll "
            "back to another verified version (`vlaninfra history`)")


def new_record(layout: Any, the_plan: Plan, ctl: Control, version: int) -> dict[str, Any]:
    """The record of applying `layout` (status filled in after verification)."""
    containers = _containers(the_plan)
    return {
        "version": version,
        "time": _now(),
        "by": ctl.by,
        "action": ctl.action,
        "rollback_to": ctl.rollback_to,
        "run": ctl.run,
        "status": "unverified" if ctl.action == "pulumi up" else "applied",
        "vlaninfra": _version(),
        "summary": summary(the_plan),
        "layout": json.loads(json.dumps(layout)),
        "allocations": {k: [str(a) for a in v] for k, v in the_plan.allocations.items()},
        "containers": containers,
        "failed": [],
    }


def prune(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest `KEEP_RECORDS` records; layouts and allocations only on the newest
    `KEEP_LAYOUTS` that have them (older ones stay listed, but cannot be rolled back to).
    The newest verified record always stays, with its layout: failed or unverified attempts
    never push out the version a rollback returns to."""
    verified = next((r for r in reversed(records)
                     if r.get("status") == "verified" and r.get("layout") is not None), None)
    tail = records[-KEEP_RECORDS:]
    if verified is not None and not any(r is verified for r in tail):
        tail = [verified, *tail[1:]]
    kept = 0
    out = []
    for r in reversed(tail):
        if r.get("layout") is not None:
            kept += 1
            if kept > KEEP_LAYOUTS and r is not verified:
                r = {**r, "layout": None, "allocations": None, "containers": None}
        out.append(r)
    return out[::-1]


def _same_as_last(records: Sequence[Mapping[str, Any]], new: Mapping[str, Any]) -> bool:
    last = records[-1] if records else None
    return last is not None and all(_canon(last.get(k)) == _canon(new.get(k))
                                    for k in ("layout", "allocations", "containers", "vlaninfra"))


def next_records(records: Sequence[Mapping[str, Any]], new: dict[str, Any],
                 ctl: Control) -> list[dict[str, Any]]:
    """The records after an apply: a pending change it ends settled (`vlaninfra.window`),
    `new` appended; a plain `pulumi up` that changed nothing adds nothing."""
    from vlaninfra.window import settle

    out = settle([dict(r) for r in records], ctl)
    if ctl.action == "pulumi up" and _same_as_last(out, new):
        return out
    return prune([*out, new])


def finalized(records: Sequence[Mapping[str, Any]], version: int,
              verification: Any) -> list[dict[str, Any]]:
    """The records with version `version`'s status set from `verification` (a
    `vlaninfra.verify.Verification`), in place: no new version."""
    failed = [f"{r.where} {r.check} {r.target}: {r.detail}" for r in verification.failed][:20]

    def status(r: Mapping[str, Any]) -> str:
        if not verification.ok:
            return "failed-verification"
        # a windowed apply (`vlaninfra.window.mark_pending`) waits for `vlaninfra confirm`
        return "pending" if r.get("token") and r.get("deadline") else "verified"

    return [{**r, "status": status(r), "failed": failed} if r.get("version") == version
            else dict(r) for r in records]


def with_failure(records: Sequence[Mapping[str, Any]], last: int,
                 attempt: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The records after a failed controller apply that started from version `last`: the
    record that apply left (version ``last + 1``, `applied`: the engine kept its outputs, e.g.
    a delete failed after every create went through) gets status `apply-failed` in place;
    else `attempt` is appended as the next version (never touching another run's record).
    Example: ``with_failure(records, 3, {"failed": ["..."]})``"""
    out = [dict(r) for r in records]
    if attempt.get("run") is not None and any(
            r.get("run") == attempt["run"] and r.get("status") == "apply-failed" for r in out):
        return out  # recorded already (a retried recording run)
    fail = {"status": "apply-failed", "failed": list(attempt.get("failed") or [])}
    newest = max((int(r.get("version", 0)) for r in out), default=0)
    if (out and newest == last + 1 and out[-1].get("status") == "applied"
            and attempt.get("run") is not None and out[-1].get("run") == attempt.get("run")):
        out[-1].update(fail)
        return out
    return prune([*out, {"time": _now(), "layout": None, "allocations": None,
                         "containers": None, "summary": "", **attempt, **fail,
                         "version": newest + 1}])
