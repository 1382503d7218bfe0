"""Run the Pulumi CLI the way `tools/pulumi` does: for the demo, the tests and benchmarks.

- :mod:`._engine`: :class:`Engine` (environment, backend, clean-up after a killed run, errors)
- :mod:`._project`: the project's and stacks' files (lab stacks, plain-text keys)
- :mod:`._output`: what a ``--json`` run printed
- :mod:`._launcher`: ``tools/pulumi`` (``python -m vlaninfra.engine exec``)

Example::

    result = Engine(project_root()).run("lab", "up", "--yes")
"""

from __future__ import annotations

from . import _engine, _project
from ._engine import *  # noqa: F403
from ._launcher import command_and_stack
from ._output import summary_of
from ._project import *  # noqa: F403

__all__ = ["command_and_stack", "summary_of"]
__all__ += _engine.__all__
__all__ += _project.__all__
