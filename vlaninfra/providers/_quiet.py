"""Expected failures reach the user as their message, not as a Python traceback.

Pulumi's dynamic-provider server (``python -m pulumi.dynamic``, so module ``__main__``) turns
every exception of a provider method into ``traceback.format_exc()``. For vlaninfra's own
errors (`VlanInfraError`: host unreachable, outcome unknown, a name clash, Docker refusing),
which already name host, object, config key and what to do, the traceback is noise that hides
the message; other exceptions (bugs) keep their traceback.
"""

from __future__ import annotations

import sys
import traceback
from types import ModuleType

from vlaninfra.errors import VlanInfraError

__all__ = ["format_exc", "install"]


def format_exc() -> str:
    """The current exception as the server should report it: a vlaninfra error's message
    alone (with its exception type's name), anything else as the full traceback."""
    exc = sys.exc_info()[1]
    if isinstance(exc, VlanInfraError):
        return f"{type(exc).__name__}: {exc}"
    return traceback.format_exc()


class _Traceback(ModuleType):
    """Stands in for the ``traceback`` module inside the provider server only."""

    def __getattr__(self, name: str) -> object:
        return getattr(traceback, name)


def install(main: ModuleType | None = None) -> bool:
    """Point the dynamic-provider server's ``traceback`` at `format_exc`; True if it was there.

    A no-op in any other process (the Pulumi program, tests, the CLI)."""
    main = main if main is not None else sys.modules.get("__main__")
    if main is None or not hasattr(main, "_abort_with_traceback"):
        return False
    if not isinstance(getattr(main, "traceback", None), _Traceback):
        shim = _Traceback("traceback")
        shim.format_exc = format_exc  # type: ignore[attr-defined]
        main.traceback = shim  # type: ignore[attr-defined]
    return True
