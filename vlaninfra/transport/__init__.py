"""Reaches Docker hosts and runs ops on them through the vlaninfra agent.

The transport only moves bytes: it builds a content-hashed zipapp of ``vlaninfra.host`` and
its pure-Python dependencies, uploads it over SFTP when the host has no copy with that
sha256, starts it with the host's ``python3`` through a fixed bootstrap that checks the
cached file (owner, mode, no symlinks, sha256) and runs exactly the checked bytes, and speaks
line-delimited JSON over the SSH channel (or a local subprocess). Every wait is bounded
(per-op deadlines, dead-peer pings, upload and start deadlines); a call that may have run
without an answer raises :class:`OutcomeUnknownError`. One connection and one agent process
per host per Python process, shared by every caller; with :func:`use_broker` (the provider
server) also shared by the processes of one run through a local connection broker.

Example::

    from vlaninfra.transport import SshTarget, agent_for

    target = SshTarget("192.0.2.10", private_key=key_text,
                       host_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI...")
    agent_for(target).call("docker.network.inspect", name="lan")
"""

from __future__ import annotations

from vlaninfra.transport._agent import Agent, agent_for, close_all
from vlaninfra.transport._broker import use_broker
from vlaninfra.transport._errors import (
    AgentExitedError,
    AuthenticationError,
    HostError,
    HostKeyError,
    OutcomeUnknownError,
    TargetError,
    TransportError,
)
from vlaninfra.transport._facts import checking
from vlaninfra.transport._stats import reset_stats, stats
from vlaninfra.transport._targets import LocalTarget, SshTarget, Target
from vlaninfra.transport._zipapp import Bundle, build_bundle

__all__ = [
    "Agent",
    "AgentExitedError",
    "AuthenticationError",
    "Bundle",
    "HostError",
    "HostKeyError",
    "LocalTarget",
    "OutcomeUnknownError",
    "SshTarget",
    "Target",
    "TargetError",
    "TransportError",
    "agent_for",
    "build_bundle",
    "checking",
    "close_all",
    "reset_stats",
    "stats",
    "use_broker",
]
