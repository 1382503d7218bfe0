"""The lab's exception."""

from __future__ import annotations

from vlaninfra.errors import VlanInfraError

__all__ = ["LabError"]


class LabError(VlanInfraError, RuntimeError):
    """The lab could not be built, inspected or removed; the message says what to do.

    Example: ``raise LabError("dockerd in vl-a-h1 did not answer within 30 s: ...")``
    """
