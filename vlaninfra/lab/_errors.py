"""The lab's exception."""

from __future__ import annotations

from vlaninfra.errors import VlanInfraError

__all__ = ["LabError", "VmError"]


class LabError(VlanInfraError, RuntimeError):
    """The lab could not be built, inspected or removed; the message says what to do.

    Example: ``raise LabError("dockerd in vl-a-h1 did not answer within 30 s: ...")``
    """


class VmError(LabError):
    """A VM lab host could not be built, started or stopped; the message says why.

    Example: ``VmError("vm h1: ssh 203.0.113.250 did not answer within 60 s; console: ...")``
    """
