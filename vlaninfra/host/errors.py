"""Errors raised by agent ops; the agent turns them into error responses.

The agent runs alone on the host, so these do not derive from ``VlanInfraError``: the
transport re-raises them on the caller's side as ``vlaninfra.transport.HostError``.

::

    OpError(Exception)        an op failed; carries an errno the caller branches on
"""

from __future__ import annotations

import errno as _errno
from typing import Any, NoReturn

__all__ = ["OpError", "raise_undone"]


class OpError(Exception):
    """An op failed for a reason the caller can act on.

    Example: ``raise OpError(errno.ENOENT, "image busybox:lab is not on this host")``
    """

    def __init__(self, code: int, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        """An ``errno`` value (``errno.EEXIST``, ``errno.ENOENT``, ``errno.EBUSY``...)."""
        self.message = message
        """What went wrong, in the caller's terms (names, addresses); never a secret."""
        self.details = details
        """JSON-able extra context (e.g. ``containers=[...]`` for EBUSY)."""

    @property
    def errname(self) -> str:
        """The symbolic errno name, e.g. ``"EEXIST"``."""
        return _errno.errorcode.get(self.code, str(self.code))


def raise_undone(exc: BaseException) -> NoReturn:
    """Re-raise ``exc``, the failure of an op that then undid every step it had made, as an
    ``OpError`` with ``details["rolled_back"] = True`` (the caller may say "nothing was left")."""
    if isinstance(exc, OpError):
        exc.details["rolled_back"] = True
        raise exc
    if not isinstance(exc, Exception):
        raise exc
    from vlaninfra.host.dispatch import describe_error

    described = describe_error(exc)
    raise OpError(described["errno"] or _errno.EIO, described["message"],
                  **described["details"], rolled_back=True) from exc
