"""Transport exceptions.

::

    VlanInfraError
    ├── HostError(VlanInfraError, OSError)           an op ran on the host and failed (errno)
    └── TransportError(VlanInfraError, ConnectionError)   the host could not be reached/used
        ├── HostKeyError                              host key unknown or changed (pinned)
        ├── AuthenticationError                       private key rejected or unusable
        ├── AgentExitedError                          the agent process died or never started
        └── OutcomeUnknownError                       a request may have run; no answer came

Errors carry structured context (``host``, ``op``, ``errno``) as attributes; messages name
``user@host:port`` and what to change, never a key.
"""

from __future__ import annotations

import errno as _errno
from typing import Any

from vlaninfra.errors import VlanInfraError

__all__ = [
    "AgentExitedError",
    "AuthenticationError",
    "HostError",
    "HostKeyError",
    "OutcomeUnknownError",
    "TransportError",
]


class HostError(VlanInfraError, OSError):
    """An op reached the agent and failed there; ``errno`` tells why.

    Example::

        try:
            agent.call("docker.network.create", name="lan", driver="macvlan", ...)
        except HostError as exc:
            if exc.errno == errno.EEXIST: ...
    """

    def __init__(
        self,
        message: str,
        *,
        op: str,
        host: str,
        errno: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        OSError.__init__(self, errno, message)
        self.op = op
        """The op that failed, e.g. ``"shim.ensure"``."""
        self.host = host
        """Which host: ``user@host:port`` or ``local``/``local netns <ns>``."""
        self.message = message
        """The agent's explanation (names and addresses only, never secrets)."""
        self.details = dict(details or {})
        """Structured extras from the agent (e.g. ``{"containers": [...]}`` for EBUSY)."""

    @property
    def errname(self) -> str | None:
        """Symbolic errno name (``"EEXIST"``), or None."""
        return _errno.errorcode.get(self.errno) if self.errno is not None else None

    def __str__(self) -> str:
        code = f"[{self.errname}] " if self.errname else ""
        return f"{self.op} on {self.host} failed: {code}{self.message}"

    def __reduce__(self) -> Any:
        return (_rebuild_host_error, (self.message, self.op, self.host, self.errno,
                                      self.details))


def _rebuild_host_error(message: str, op: str, host: str, errno: int | None,
                        details: dict[str, Any]) -> HostError:
    return HostError(message, op=op, host=host, errno=errno, details=details)


class TargetError(VlanInfraError, ValueError):
    """A target's settings cannot be right (a host key that is no key, ``user@`` in the
    address): refused before any connection, as its message, never a traceback.

    Example: ``TargetError("SshTarget.user 'a@b' is not a user name")``
    """


class TransportError(VlanInfraError, ConnectionError):
    """The host could not be reached or used (network, SSH, agent start, timeout).

    Example: ``TransportError("cannot reach root@192.0.2.10:22: timed out", host="...")``
    """

    def __init__(self, message: str, *, host: str) -> None:
        ConnectionError.__init__(self, message)
        self.message = message
        """What happened and what to check."""
        self.host = host
        """``user@host:port`` or ``local``/``local netns <ns>``."""

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> Any:
        return (type(self)._rebuild, (self.message, self.host))

    @classmethod
    def _rebuild(cls, message: str, host: str) -> TransportError:
        return cls(message, host=host)


class HostKeyError(TransportError):
    """The server's host key is not the pinned one (unknown type or changed): refused."""


class AuthenticationError(TransportError):
    """The server rejected the private key, or the key could not be loaded."""


class AgentExitedError(TransportError):
    """The agent process exited (or never came up); its last stderr lines are attached."""


class OutcomeUnknownError(TransportError):
    """A request may have reached the agent, but no answer came (deadline passed, connection
    died, agent exited): the op may have run, in part or in full. The session and the SSH
    connection it used are dropped; the next call reconnects.

    Example message: ``outcome unknown on root@192.0.2.10:22: docker.container.create got no
    answer within 120s; the next `pulumi up` (or `pulumi refresh`) reconciles it``
    """

    def __init__(self, message: str, *, host: str, op: str = "") -> None:
        super().__init__(message, host=host)
        self.op = op
        """The op whose outcome is unknown, e.g. ``"docker.container.create"``."""

    @classmethod
    def for_op(cls, host: str, op: str, why: str) -> OutcomeUnknownError:
        """The standard message: what is unknown, why, and what reconciles it."""
        return cls(f"outcome unknown on {host}: {op} {why}; the next `pulumi up` "
                   "(or `pulumi refresh`) reconciles it", host=host, op=op)
