"""Arguments and results every kind of object shares."""

from __future__ import annotations

import re
from dataclasses import dataclass

from vlaninfra.host.marks import ADHOC_OWNER

__all__ = ["MAC", "Mark", "Named", "Removed"]

MAC = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}")
"""A MAC address as Docker and the kernel take it: six hex pairs, ``02:42:c0:00:02:82``."""


@dataclass(frozen=True)
class Mark:
    """Who asks for an object: the owning stack, the spec hash put on it, its config key."""

    owner: str = ADHOC_OWNER
    spec: str | None = None
    resource: str | None = None


@dataclass(frozen=True)
class Named:
    """An object named ``name`` on the host."""

    name: str


@dataclass(frozen=True)
class Removed:
    """What a remove did: ``removed``, or ``kept`` (why an object of that name that is not
    the caller's was left in place)."""

    removed: bool
    kept: str | None = None
