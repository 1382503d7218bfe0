"""Where an agent runs: :class:`SshTarget` (a host over SSH) or :class:`LocalTarget`."""

from __future__ import annotations

import re
import sys
from dataclasses import KW_ONLY, dataclass, field
from typing import TypeAlias

from vlaninfra._hostkey import host_key_problem
from vlaninfra.transport._errors import TargetError

__all__ = ["LocalTarget", "SshTarget", "Target"]

_NETNS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _check_path(value: str, what: str) -> None:
    if not value or any(c in value for c in "\0\n\r"):
        raise TargetError(f"{what} must be a non-empty path without NUL or newlines")


@dataclass(frozen=True)
class SshTarget:
    """A Docker host reached over SSH with a pinned host key and a private key (or ssh-agent).

    Plain data (it is pickled into Pulumi state by the providers): no live objects. The
    private key and passphrase never appear in ``repr``, logs or error messages.

    Example::

        SshTarget("192.0.2.10", user="deploy", sudo=True,
                  private_key=open("id_ed25519").read(),
                  host_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI...")
    """

    host: str
    """DNS name or address of the host."""
    _: KW_ONLY
    private_key: str | None = field(default=None, repr=False)
    """PEM/OpenSSH private key text (ed25519, ECDSA or RSA). A secret. None: authenticate
    with the keys of the running ssh-agent (``SSH_AUTH_SOCK``), as ``ssh`` would."""
    host_key: str
    """The pinned host key, ``"ssh-ed25519 AAAA..."`` (a known_hosts line without the host
    name). Any other key, or a key of another type, is refused: never auto-added."""
    port: int = 22
    """SSH port."""
    user: str = "root"
    """Login user."""
    sudo: bool = False
    """Run the agent as root through ``sudo -n`` (passwordless sudo needed)."""
    python: str = "python3"
    """The host's Python (>= 3.10) that runs the agent."""
    docker_socket: str = "/var/run/docker.sock"
    """The Docker Engine API socket on the host."""
    passphrase: str | None = field(default=None, repr=False)
    """Passphrase of an encrypted private key. A secret."""
    config_key: str | None = field(default=None, compare=False)
    """Where the host's settings live in the stack config, for messages only, e.g.
    ``"sites.a.hosts[0].ssh.host_key"``: a refused host key names it. Not part of the
    identity (two targets differing only here share one connection)."""

    def __post_init__(self) -> None:
        if not self.host or any(c.isspace() or c in "\0/@" for c in self.host):
            raise TargetError(f"SshTarget.host {self.host!r} is not a host name or address")
        if not 0 < self.port < 65536:
            raise TargetError(f"SshTarget.port must be 1-65535, not {self.port}")
        if not self.user or any(c.isspace() or c in "\0@:" for c in self.user):
            raise TargetError(f"SshTarget.user {self.user!r} is not a user name")
        problem = host_key_problem(self.host_key)
        if problem is not None:
            raise TargetError(f"{self.config_key or 'SshTarget.host_key'}: {problem}")
        _check_path(self.python, "SshTarget.python")
        _check_path(self.docker_socket, "SshTarget.docker_socket")

    @property
    def label(self) -> str:
        """``user@host:port``, how messages name this target."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}:{self.port}"


def _default_python() -> str:
    return sys.executable or "python3"


@dataclass(frozen=True)
class LocalTarget:
    """The machine the program runs on, optionally inside a named network namespace.

    With ``netns`` the agent is started as ``nsenter --net=/run/netns/<netns> python ...``
    (so it sees that namespace's links and routes; the Docker socket path is unchanged).

    Example: ``LocalTarget(netns="vx-host1", docker_socket="/run/vx-host1/docker.sock")``
    """

    netns: str | None = None
    """Name of a namespace under ``/run/netns`` (as ``ip netns add`` makes), or None."""
    python: str = field(default_factory=_default_python)
    """The Python that runs the agent (default: this interpreter)."""
    docker_socket: str = "/var/run/docker.sock"
    """The Docker Engine API socket."""
    sudo: bool = False
    """Prefix the agent command with ``sudo -n``."""

    def __post_init__(self) -> None:
        if self.netns is not None and not _NETNS_RE.match(self.netns):
            raise TargetError(f"LocalTarget.netns {self.netns!r} is not a namespace name")
        _check_path(self.python, "LocalTarget.python")
        _check_path(self.docker_socket, "LocalTarget.docker_socket")

    @property
    def label(self) -> str:
        """``local`` or ``local netns <name>``."""
        return f"local netns {self.netns}" if self.netns else "local"


Target: TypeAlias = SshTarget | LocalTarget
"""Either kind of target; ``agent_for`` accepts both."""
