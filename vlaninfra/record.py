"""Known-good records: what each apply put on the hosts, kept in the stack's own state.

The program exports one stack output, ``vlaninfra`` = ``{"format": 1, "records": [...]}``.
Each record says what one apply did: its version (vlaninfra's own counter: the file backend's
history has no version numbers and no `stack export --version`), time, who, the action (`up`,
`rollback`, `pulumi up`), its status (`verified`, `failed-verification`, `apply-failed`,
`unverified` for a plain `pulumi up`), the vlaninfra version, a summary, the layout as applied
(the `vlaninfra:sites` config, plain JSON), the plan's pinned allocations and every container's
address and MAC. The program reads the previous records of its own stack (the engine's
`readStackOutputs` invoke: no resource added, any backend) and appends; a failed apply keeps
the previous outputs. Layouts are kept for the newest `KEEP_LAYOUTS` records.

`vlaninfra up` / `rollback` (`vlaninfra.rollout`) steer the program through one environment
variable, `VLANINFRA_ROLLOUT`, naming a JSON file: ``{"action", "verify", "report", "layout",
"pins", "rollback_to", "attempt", "by"}``. Without it the program is a plain `pulumi up`: the
stack config's layout, the last record's allocations pinned, no verification.

Example (the program)::

    control = record.control()
    records = record.previous_records()
    sites = record.sites(config, control)
    the_plan = plan(layout, previous=record.pins(records, control))
    ...
    record.export(sites, the_plan, resources, records, control, verify=...)
"""

from __future__ import annotations

import datetime
import getpass
import json
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlaninfra.errors import VlanInfraError
from vlaninfra.layout import Plan

__all__ = [
    "OUTPUT",
    "ROLLOUT_ENV",
    "Control",
    "control",
    "export",
    "new_record",
    "pins",
    "previous_records",
    "prune",
    "sites",
    "summary",
]

OUTPUT = "vlaninfra"
"""The stack output holding the records."""
ROLLOUT_ENV = "VLANINFRA_ROLLOUT"
"""Environment variable naming the controller's JSON file (set by `vlaninfra.rollout`)."""
FORMAT = 1
KEEP_RECORDS = 100
KEEP_LAYOUTS = 20


@dataclass(frozen=True)
class Control:
    """What the controller asks of this run of the program (see the module doc)."""

    action: str = "pulumi up"
    verify: bool = False
    report: str | None = None
    layout: Mapping[str, Any] | None = None
    pins: Mapping[str, Sequence[str]] | None = None
    rollback_to: int | None = None
    attempt: Mapping[str, Any] | None = None
    by: str = field(default_factory=lambda: who())
    guard: Mapping[str, Any] | None = None
    """The hosts' commit-confirmed guards (`vlaninfra.confirm`)."""


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


def previous_records() -> list[dict[str, Any]]:
    """The records of this stack's last successful update (empty for a new stack)."""
    import pulumi
    from pulumi.runtime import invoke

    name = f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}"
    try:
        result = invoke("pulumi:pulumi:readStackOutputs", {"name": name})
    except Exception:  # a brand-new stack has no outputs to read
        return []
    outputs = (result.value or {}).get("outputs") or {}
    return records_of(outputs.get(OUTPUT))


def records_of(output: Any) -> list[dict[str, Any]]:
    """The records in a `vlaninfra` stack output value (empty when absent or foreign)."""
    if not isinstance(output, Mapping) or output.get("format") != FORMAT:
        return []
    out = []
    for r in output.get("records") or ():
        if isinstance(r, Mapping):
            # The engine hands numbers back as floats.
            out.append({**r, **{k: int(r[k]) for k in ("version", "rollback_to")
                                if isinstance(r.get(k), (int, float))}})
    return out


def _canon(value: Any) -> Any:
    """`value` as it comes back from the engine's outputs: None-valued keys dropped, whole
    floats as ints, so a record compares equal to itself after a round trip."""
    if isinstance(value, Mapping):
        return {k: _canon(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_canon(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def sites(config_sites: Callable[[], Any], ctl: Control) -> Any:
    """The layout to apply: the controller's (a rollback) or the stack config's."""
    return ctl.layout if ctl.layout is not None else config_sites()


def pins(records: Sequence[Mapping[str, Any]], ctl: Control) -> dict[str, list[str]]:
    """Allocations to keep: the controller's (a rollback's target), else those of the newest
    record whose layout reached the hosts, so no existing container moves."""
    if ctl.pins is not None:
        return {k: list(v) for k, v in ctl.pins.items()}
    for r in reversed(records):
        if r.get("allocations") is not None and r.get("status") != "apply-failed":
            return {k: list(v) for k, v in r["allocations"].items()}
    return {}


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


def check_rollback(records: Sequence[Mapping[str, Any]], ctl: Control, the_plan: Plan) -> None:
    """For a rollback (``ctl.rollback_to``): raises if any container would not get the address
    and MAC its target record holds (a pin that no longer holds), so nothing is changed.

    Example: ``check_rollback(records, Control(rollback_to=3), the_plan)``
    """
    if ctl.rollback_to is None:
        return
    target = next((r for r in records if r.get("version") == ctl.rollback_to), None)
    if target is None or target.get("containers") is None:
        raise VlanInfraError(f"version {ctl.rollback_to} keeps no container addresses, so it "
                             "cannot be restored exactly; nothing was changed: roll back to "
                             "another verified version (`vlaninfra history`)")
    want, have = _canon(target["containers"]), _canon(_containers(the_plan))
    differ = sorted(k for k in want.keys() | have.keys() if want.get(k) != have.get(k))
    if differ:
        raise VlanInfraError(
            f"rolling back to version {ctl.rollback_to} would not restore the recorded address "
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
        "status": "unverified",
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
    """The records after this run: the controller's failed attempt (if any), then `new`;
    a plain `pulumi up` that changed nothing adds nothing."""
    from vlaninfra.confirm import settle

    out = settle([dict(r) for r in records], ctl)
    if ctl.action == "confirm":  # the pending record is now verified; nothing is appended
        return out
    if ctl.action == "pulumi up" and _same_as_last(out, new):
        return out
    if ctl.attempt is not None:
        out.append({**ctl.attempt, "version": new["version"]})
        new = {**new, "version": new["version"] + 1}
    out.append(new)
    return prune(out)


def export(layout: Any, the_plan: Plan, resources: Sequence[Any],
           records: Sequence[Mapping[str, Any]], ctl: Control,
           verify: Callable[[], Any]) -> None:
    """Exports the records once every resource is in place; with ``ctl.verify`` verification
    runs first (`verify()` returns a `vlaninfra.verify.Verification`) and decides the status,
    and the report goes to ``ctl.report``."""
    import asyncio

    import pulumi

    from vlaninfra.confirm import mark_pending

    version = max((int(r.get("version", 0)) for r in records), default=0) + 1
    new = new_record(layout, the_plan, ctl, version)
    if pulumi.runtime.is_dry_run():
        pulumi.export(OUTPUT, {"format": FORMAT, "records": list(records)})
        return

    def finish(verification: Any) -> dict[str, Any]:
        if verification is not None:
            new["status"] = "verified" if verification.ok else "failed-verification"
            new["failed"] = [f"{r.where} {r.check} {r.target}: {r.detail}"
                             for r in verification.failed][:20]
            if ctl.report:
                Path(ctl.report).write_text(json.dumps(verification.to_json()), encoding="utf-8")
        mark_pending(new, ctl)
        return {"format": FORMAT, "records": next_records(records, new, ctl)}

    async def after_apply(_ids: Any) -> dict[str, Any]:
        if not ctl.verify:
            return finish(None)
        return finish(await asyncio.get_running_loop().run_in_executor(None, verify))

    ids = [r.id for r in resources]
    pulumi.export(OUTPUT, pulumi.Output.all(*ids).apply(after_apply))


def custom_resources(components: Sequence[Any]) -> list[Any]:
    """The custom resources (networks, shims, containers, 802.1Q parents, routes) of the
    components `vlaninfra.components.deploy` returned."""
    out: list[Any] = []
    for comp in components:
        for attr in ("parents", "networks", "shims", "containers", "routes"):
            out.extend(getattr(comp, attr, {}).values())
    return out
