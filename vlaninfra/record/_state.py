"""The records in the stack's state: reading the previous ones (the engine's
`readStackOutputs` invoke) and exporting the new list as the `OUTPUT` stack output."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlaninfra.errors import VlanInfraError
from vlaninfra.layout import Plan

from ._control import FORMAT, OUTPUT, Control
from ._history import finalized, new_record, next_records, records_of

__all__ = ["Previous", "custom_resources", "export", "previous_records"]

READ_ATTEMPTS = 6
"""Reads of the records before the program gives up (the engine may be writing them)."""


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
