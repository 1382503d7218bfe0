"""Known-good records: what each apply put on the hosts, kept in the stack's own state.

The program exports one stack output, ``vlaninfra`` = ``{"format": 1, "records": [...]}``.
Each record says what one apply did: its version (vlaninfra's own counter: the file backend's
history has no version numbers and no `stack export --version`), time, who, the action (`up`,
`rollback`, `pulumi up`), its status, the vlaninfra version, a summary, the layout as applied
(the `vlaninfra:sites` config; kept secret in state when that config value is a secret), the
plan's pinned allocations and every container's address and MAC. The program reads the
previous records of its own stack (the engine's `readStackOutputs` invoke: no resource added,
any backend) and appends. Layouts are kept for the newest `KEEP_LAYOUTS` records.

Statuses: `applied` (the controller's apply went through; verification still to come),
`verified` / `failed-verification` (set in place by the controller's finalize run),
`apply-failed` (written by the controller after a failed apply), `unverified` (a plain
`pulumi up`); a windowed apply (`vlaninfra.window`) is `pending` once verified, then
`verified` (confirmed), `expired`, `rolled-back` or `superseded`.

`vlaninfra up` / `rollback` (`vlaninfra.rollout`) steer the program through one environment
variable, `VLANINFRA_ROLLOUT`, naming a JSON file (`Control`). Phase ``apply``: the layout
(the config's, or a rollback's `layout` and `pins`) is applied and recorded as version
``last + 1``, status `applied`. Phase ``finalize`` (run with ``--target`` the stack resource
alone, so the engine changes no resource): the program plans record ``version`` again with its
own allocations, checks it plans the very addresses and MACs recorded, verifies through the
agents, writes the report and sets that record's status in place. So verification always sees
the state the whole `pulumi up`, deletes included, left, and a record says `verified` only
when its apply succeeded. ``last`` is the newest version the controller read: a program that
reads other records (a backend error, a concurrent update) stops before changing anything.
Without the variable the program is a plain `pulumi up`: the stack config's layout, the last
record's allocations pinned, no verification; an unreadable record output stops it too.

Example (the program)::

    ctl = record.control()
    previous = record.previous_records(ctl)
    layout_value, pinned = record.target(config_sites, previous.records, ctl)
    the_plan = plan(layout, previous=pinned)
    ...
    record.export(layout_value, the_plan, resources, previous, ctl, verify=...)
"""

from __future__ import annotations

import datetime
import getpass
import json
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlaninfra.errors import VlanInfraError
from vlaninfra.layout import Plan

__all__ = [
    "OUTPUT",
    "REFUSED",
    "ROLLOUT_ENV",
    "Control",
    "Previous",
    "check_exact",
    "control",
    "export",
    "last_applied",
    "new_record",
    "previous_records",
    "prune",
    "summary",
    "target",
    "with_failure",
]

OUTPUT = "vlaninfra"
"""The stack output holding the records."""
REFUSED = "(vlaninfra refused this run before any change: nothing was changed)"
"""Ends every error the program raises before it registers a resource: the controller then
knows the hosts are untouched (no failed attempt to record, nothing to roll back)."""
ROLLOUT_ENV = "VLANINFRA_ROLLOUT"
"""Environment variable naming the controller's JSON file (set by `vlaninfra.rollout`)."""
FORMAT = 1
KEEP_RECORDS = 100
KEEP_LAYOUTS = 20
READ_ATTEMPTS = 6
"""Reads of the records before the program gives up (the engine may be writing them)."""


@dataclass(frozen=True)
class Control:
    """What the controller asks of this run of the program (see the module doc)."""

    action: str = "pulumi up"
    phase: str = "apply"
    """``apply``; ``finalize`` (verify record `version`) or ``confirm`` (confirm it): these two
    change no resource."""
    report: str | None = None
    """Where the finalize run writes the verification (JSON)."""
    layout: Mapping[str, Any] | None = None
    pins: Mapping[str, Sequence[str]] | None = None
    rollback_to: int | None = None
    last: int | None = None
    """The newest version the controller read (0: none); None for a plain `pulumi up`."""
    version: int | None = None
    """The record a finalize (or confirm) run verifies (or confirms)."""
    guard: Mapping[str, Any] | None = None
    """The hosts' commit-confirmed guards to arm or disarm (`vlaninfra.window`)."""
    by: str = field(default_factory=lambda: who())
    run: str | None = None
    """The controller's id of this apply, kept in its record: a failed apply marks only the
    record its own run left."""


def who() -> str:
    """``user@machine``: who ran the apply."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def control() -> Control:
    """The controller's instructions, or a plain `pulumi up`'s defaults."""
    path = os.environ.get(ROLLOUT_ENV)
    if not path:
        return Control()
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise VlanInfraError(f"{ROLLOUT_ENV}={path}: cannot read it ({err}); unset it for a "
                             "plain `pulumi up`") from None
    known = set(Control.__dataclass_fields__)
    return Control(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class Previous:
    """The records the stack's state holds, and whether they were kept secret."""

    records: list[dict[str, Any]]
    secret: bool = False


def previous_records(ctl: Control) -> Previous:
    """The records of this stack's state. A new stack reads as no records (the engine answers
    with empty outputs); any failure to read them raises, and so does a controller run that
    reads other records than it expects (``ctl.last``): versions never restart by mistake."""
    import pulumi
    from pulumi.runtime import invoke

    name = f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}"
    for attempt in range(READ_ATTEMPTS):
        try:
            value = invoke("pulumi:pulumi:readStackOutputs", {"name": name}).value
            break
        except Exception as err:  # e.g. the file backend's checkpoint caught mid-write: EOF
            if attempt == READ_ATTEMPTS - 1:
                raise VlanInfraError(
                    f"cannot read the stack's records (output {OUTPUT!r}) from the backend "
                    f"({READ_ATTEMPTS} tries): {err}; nothing was changed: run again once the "
                    "backend answers") from None
            time.sleep(0.2 * (attempt + 1))
    if not isinstance(value, Mapping):
        raise VlanInfraError(f"the backend gave no outputs for stack {name} (got {value!r}); "
                             "nothing was changed: run again once the backend answers")
    outputs = value.get("outputs") or {}
    records = records_of(outputs.get(OUTPUT))
    have = max((int(r["version"]) for r in records if "version" in r), default=0)
    if ctl.last is not None and have != ctl.last:
        raise VlanInfraError(f"expected the stack's records up to version {ctl.last}, read "
                             f"{'up to version ' + str(have) if have else 'none'} (another "
                             "update in between, or the backend answered partly); nothing was "
                             "changed: check `vlaninfra history` and run again")
    if ctl.phase == "apply" and not pulumi.runtime.is_dry_run():
        from vlaninfra.window import refuse_unguarded

        refuse_unguarded(records, ctl, pulumi.get_stack())  # a change pending confirmation
    return Previous(records, OUTPUT in (value.get("secretOutputNames") or ()))


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


def _output(records: Sequence[Mapping[str, Any]], secret: bool) -> dict[str, Any]:
    """The stack output value; with `secret`, every kept layout is a secret in state."""
    import pulumi

    if secret:
        records = [{**r, "layout": pulumi.Output.secret(r["layout"])}
                   if r.get("layout") is not None else r for r in records]
    return {"format": FORMAT, "records": list(records)}


def export(layout: Any, the_plan: Plan, resources: Sequence[Any], previous: Previous,
           ctl: Control, verify: Callable[[], Any]) -> None:
    """Exports the records. Phase apply: once every resource is in place, `new_record` is
    appended (a preview keeps the records as they are). Phase finalize: `verify()` (returns a
    `vlaninfra.verify.Verification`) decides record ``ctl.version``'s status and the report goes
    to ``ctl.report``. Phase confirm: the pending record is settled (`vlaninfra.window`).
    Layouts stay secret when the `vlaninfra:sites` config is one, or the records already were.
    """
    import pulumi

    from vlaninfra.window import mark_pending, settle

    records = previous.records
    secret = previous.secret or pulumi.runtime.is_config_secret("vlaninfra:sites")
    if pulumi.runtime.is_dry_run():
        pulumi.export(OUTPUT, _output(records, secret))
        return
    if ctl.phase == "finalize":
        assert ctl.version is not None
        verification = verify()
        if ctl.report:
            Path(ctl.report).write_text(json.dumps(verification.to_json()), encoding="utf-8")
        pulumi.export(OUTPUT, _output(finalized(records, ctl.version, verification), secret))
        return
    if ctl.phase == "confirm":  # `vlaninfra confirm`: the pending record becomes verified
        pulumi.export(OUTPUT, _output(settle([dict(r) for r in records], ctl), secret))
        return
    version = max((int(r.get("version", 0)) for r in records), default=0) + 1
    new = new_record(layout, the_plan, ctl, version)
    mark_pending(new, ctl)  # a windowed apply: deadline, guards' token, version to return to
    ids = [r.id for r in resources]
    pulumi.export(OUTPUT, pulumi.Output.all(*ids).apply(
        lambda _ids: _output(next_records(records, new, ctl), secret)))


def custom_resources(components: Sequence[Any]) -> list[Any]:
    """The custom resources (networks, shims, containers, 802.1Q parents, routes) of the
    components `vlaninfra.components.deploy` returned."""
    out: list[Any] = []
    for comp in components:
        for attr in ("parents", "networks", "shims", "containers", "routes"):
            out.extend(getattr(comp, attr, {}).values())
    return out
