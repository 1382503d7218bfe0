"""The two plans a review compares, read without contacting any host: the deployed layout
(the last applied record in the stack's state, planned with its allocations pinned, exactly
as a rollback would) and the stack config's layout (planned with those allocations as
`previous`, exactly as the program would)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlaninfra import record
from vlaninfra.engine import Engine, EngineError, project_root, stack_file
from vlaninfra.errors import LayoutError, VlanInfraError
from vlaninfra.layout import Plan, load_config, plan
from vlaninfra.loader import read_stack_config
from vlaninfra.rollout import history

__all__ = ["Change", "load_change"]


@dataclass(frozen=True)
class Change:
    """What `vlaninfra diff` compares, e.g. ``compare(c.old, c.new, stack=..., base=c.base)``."""

    old: Plan | None
    """The deployed plan; None when nothing is recorded."""
    new: Plan
    base: str
    base_version: int | None
    config: Path
    """The stack file the new layout comes from."""


def load_change(stack: str, *, engine: Engine | None = None, cwd: Path | None = None,
                with_state: bool = True) -> Change:
    """The deployed and the configured plan of `stack` (`with_state=False`: the config alone).

    Raises LayoutError (the stack config is invalid: every problem) or VlanInfraError.
    Example: ``load_change("lab", cwd=find_project_root())``
    """
    engine = engine or Engine(project_root())
    project = cwd or engine.root
    path = stack_file(project, stack)
    try:
        config = read_stack_config(path)
    except OSError as err:
        raise VlanInfraError(f"stack {stack}: cannot read its config {path}: "
                             f"{err.strerror or err}; is the stack name right?") from None
    last, why = _last_applied(stack, engine, project) if with_state else (None, "")
    pins: dict[str, list[str]] = {}
    old = None
    version = None
    if last is None:
        base = f"nothing ({why or 'the state was not read'}), so everything shows as added"
    else:
        version = int(last["version"])
        pins = {k: list(v) for k, v in last["allocations"].items()}
        old = _deployed(last, version)
        base = (f"version {version} ({last.get('status')}, {last.get('time')}, "
                f"by {last.get('by')})")
    new = plan(load_config(config, source=str(path)), previous=pins)
    return Change(old, new, base, version, path)


def _deployed(last: Mapping[str, Any], version: int) -> Plan:
    try:
        return plan(load_config({"sites": last["layout"]}, source=f"version {version}"),
                    previous=last["allocations"])
    except LayoutError as err:
        raise VlanInfraError(
            f"the layout of version {version} (as recorded in the stack's state) does not plan "
            f"with this vlaninfra version, so it cannot be compared:\n{err}") from None


def _last_applied(stack: str, engine: Engine,
                  project: Path) -> tuple[Mapping[str, Any] | None, str]:
    """The record whose layout is on the hosts, or None and why there is none."""
    try:
        listed = json.loads(engine.run(None, "stack", "ls", "--json", cwd=project) or "[]")
    except (EngineError, ValueError) as err:
        raise VlanInfraError(f"cannot list the stacks of the backend: {err}") from None
    found = next((s for s in listed if str(s.get("name", "")).split("/")[-1] == stack), None)
    if found is None:
        return None, "the stack is not on the backend yet: never deployed"
    last = record.last_applied(history(stack, engine=engine, cwd=project))
    if last is not None and last.get("layout") is not None:
        return last, ""
    count = found.get("resourceCount")
    if count:
        return None, (f"the stack holds {count} resources but no vlaninfra record of an "
                      "apply: deployed before records were kept; the next `vlaninfra up` "
                      "records one")
    return None, "no apply recorded in the stack's state"
