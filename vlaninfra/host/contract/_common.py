"""Arguments and results every kind of object shares."""

from __future__ import annotations

from dataclasses import dataclass

from vlaninfra.host.marks import ADHOC_OWNER

__all__ = ["Mark", "Named", "Removed"]


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
