"""Errors raised by agent ops; the agent turns them into error responses.

The agent runs alone on the host, so these do not derive from ``VlanInfraError``: the
transport re-raises them on the caller's side as ``vlaninfra.transport.HostError``.

::

    OpError(Exception)        an op failed; carries an errno the caller branches on
"""

from __future__ import annotations

import errno as _errno
from typing import Any

__all__ = ["OpError"]


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
