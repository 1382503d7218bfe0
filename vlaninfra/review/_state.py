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
from vlaninfra.layout._files import read_stack_config
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
    last = _last_applied(stack, engine, project) if with_state else None
    pins: dict[str, list[str]] = {}
    old = None
    if last is None:
        base = ("nothing: the stack's state holds no record of an apply (never deployed, or "
                "deployed before vlaninfra kept records), so everything shows as added")
        version = None
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


def _last_applied(stack: str, engine: Engine, project: Path) -> Mapping[str, Any] | None:
    """The record whose layout is on the hosts; None for a stack that has none (or does not
    exist on the backend yet)."""
    try:
        listed = json.loads(engine.run(None, "stack", "ls", "--json", cwd=project) or "[]")
    except (EngineError, ValueError) as err:
        raise VlanInfraError(f"cannot list the stacks of the backend: {err}") from None
    if not any(str(s.get("name", "")).split("/")[-1] == stack for s in listed):
        return None
    last = record.last_applied(history(stack, engine=engine, cwd=project))
    return last if last is not None and last.get("layout") is not None else None
