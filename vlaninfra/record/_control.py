"""The controller's side of a run, as the program sees it: the control file
(`ROLLOUT_ENV`) that says which phase to run, and the names both sides share."""

from __future__ import annotations

import getpass
import json
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlaninfra.errors import VlanInfraError

__all__ = ["FORMAT", "OUTPUT", "REFUSED", "ROLLOUT_ENV", "Control", "control", "who"]

FORMAT = 1
"""The version of the records' output format."""
OUTPUT = "vlaninfra"
"""The stack output holding the records."""
REFUSED = "(vlaninfra refused this run before any change: nothing was changed)"
"""Ends every error the program raises before it registers a resource: the controller then
knows the hosts are untouched (no failed attempt to record, nothing to roll back)."""
ROLLOUT_ENV = "VLANINFRA_ROLLOUT"
"""Environment variable naming the controller's JSON file (set by `vlaninfra.rollout`)."""


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
