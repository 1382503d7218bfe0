"""Run the Pulumi CLI the way `tools/pulumi` does: for the demo, the tests and benchmarks.

- :mod:`._engine`: :class:`Engine` (environment, backend, clean-up after a killed run, errors)
- :mod:`._project`: the project's and stacks' files (lab stacks, plain-text keys)
- :mod:`._output`: what a ``--json`` run printed
- :mod:`._launcher`: ``tools/pulumi`` (``python -m vlaninfra.engine exec``)

Example::

    result = Engine(project_root()).run("lab", "up", "--yes")
"""

from __future__ import annotations

from ._engine import (
    LAB_PASSPHRASE,
    RUNS_PROGRAM,
    Engine,
    EngineError,
    StackLockedError,
    make_private,
)
from ._launcher import command_and_stack
from ._output import summary_of
from ._project import (
    config_key,
    holds_private_key,
    is_lab_stack,
    plaintext_keys,
    project_backend,
    project_name,
    project_root,
    refuse_plaintext_keys,
    stack_file,
)

__all__ = [
    "LAB_PASSPHRASE",
    "RUNS_PROGRAM",
    "Engine",
    "EngineError",
    "StackLockedError",
    "command_and_stack",
    "config_key",
    "holds_private_key",
    "is_lab_stack",
    "make_private",
    "plaintext_keys",
    "project_backend",
    "project_name",
    "project_root",
    "refuse_plaintext_keys",
    "stack_file",
    "summary_of",
]
