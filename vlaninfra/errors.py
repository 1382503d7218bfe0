"""The one root of every vlaninfra exception.

    VlanInfraError
    └── LayoutError (also ValueError): the layout or its stack config is invalid;
        ``.problems`` lists every problem found, each with its config path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["LayoutError", "Problem", "Severity", "VlanInfraError"]

Severity = Literal["error", "warning"]


class VlanInfraError(Exception):
    """Base class of every error vlaninfra raises."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding about a layout, e.g. ``Problem("sites.paris.hosts[1].name", "h 1", "...")``."""

    path: str
    """Where in the config, e.g. ``sites.paris.hosts[1].parent``."""
    value: object
    """The offending value as written."""
    message: str
    """What is wrong and what to do."""
    severity: Severity = "error"

    def __str__(self) -> str:
        return f"{self.path}: {self.message} (value: {_show(self.value)})"


def _show(value: object) -> str:
    # Addresses and networks read best as written; plain data keeps its quotes.
    plain = (str, int, float, bool, list, tuple, dict, type(None))
    return repr(value) if isinstance(value, plain) else str(value)


class LayoutError(VlanInfraError, ValueError):
    """The layout is invalid; ``str(err)`` lists every problem, one per line.

    Example: ``except LayoutError as err: print(err.problems[0].path)``
    """

    def __init__(self, problems: tuple[Problem, ...]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))
