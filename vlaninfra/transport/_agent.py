"""The :class:`Agent` handle and the per-process cache of agents (one per host)."""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

from vlaninfra.transport._errors import AgentExitedError, HostError, TransportError
from vlaninfra.transport._local import LocalConnector
from vlaninfra.transport._session import Channel, Session
from vlaninfra.transport._ssh import SshConnector
from vlaninfra.transport._stats import bump
from vlaninfra.transport._targets import LocalTarget, SshTarget, Target
from vlaninfra.transport._zipapp import Bundle, build_bundle

__all__ = ["Agent", "agent_for", "close_all"]

log = logging.getLogger("vlaninfra.transport")


class _Connector(Protocol):
    def start(self, bundle: Bundle, force_upload: bool = False) -> Channel: ...

    def close(self) -> None: ...


class Agent:
    """A handle on the agent process of one host; safe to share between threads.

    The process is started on first use and restarted once (reconnecting SSH if needed) when
    a call finds it dead. Calls from many threads run concurrently on the host.

    Example::

        agent = agent_for(SshTarget("192.0.2.10", private_key=..., host_key=...))
        agent.call("link.get", name="eth0")["up"]   # → True
    """

    call_timeout: float = 600.0
    """Seconds to wait for one op's answer (container creation can be slow)."""
    start_timeout: float = 60.0
    """Seconds to wait for the agent to start and answer ``hello``."""

    def __init__(self, target: Target, connector: _Connector | None = None) -> None:
        self.target = target
        """Where the agent runs."""
        self.label = target.label
        """``user@host:port`` / ``local`` / ``local netns <ns>``."""
        self.info: dict[str, Any] = {}
        """The agent's ``hello`` answer (pid, python, kernel, hostname...) once started."""
        if connector is None:
            connector = (SshConnector(target) if isinstance(target, SshTarget)
                         else LocalConnector(target))
        self._connector = connector
        self._session: Session | None = None
        self._lock = threading.Lock()

    def call(self, op: str, /, **args: object) -> Any:
        """Run ``op`` on the host with keyword ``args``; returns its JSON result.

        Raises :class:`HostError` (with ``errno``) when the op fails on the host, and
        :class:`TransportError` when the host cannot be reached or the agent dies.

        Example: ``agent.call("shim.delete", name="shim0")`` → ``{"deleted": True}``
        """
        session = self._session_for_call()
        bump("calls")
        return session.call(op, dict(args), self.call_timeout)

    def start(self) -> dict[str, Any]:
        """Start (or check) the agent now instead of on first call; returns ``info``."""
        self._session_for_call()
        return self.info

    def _session_for_call(self) -> Session:
        with self._lock:
            session = self._session
            if session is not None and session.alive:
                return session
            if session is not None:
                log.info("agent on %s is gone; restarting it", self.label)
                session.close()  # release the dead channel (pipes, exit status)
                self._session = None
            self._session = self._start()
            return self._session

    def _start(self) -> Session:
        bundle = build_bundle()
        for attempt in range(2):
            channel = self._connector.start(bundle, force_upload=attempt > 0)
            bump("agent_starts")
            session = Session(channel, self.label)
            try:
                session.wait_ready(self.start_timeout)
                info = session.call("hello", {"docker_socket": self.target.docker_socket},
                                    self.start_timeout)
            except AgentExitedError as exc:
                session.close()
                if attempt == 0:
                    # A damaged archive left by an earlier upload (same size, other bytes)
                    # fails before the hash check can run: upload afresh once.
                    log.warning("agent on %s did not start (%s); uploading it again",
                                self.label, exc.message)
                    continue
                hint = (f"; is {self.target.python!r} a Python >= 3.10 on that host"
                        + (" and is passwordless sudo allowed?" if self.target.sudo else "?"))
                raise AgentExitedError(exc.message + hint, host=self.label) from None
            except HostError as exc:
                session.close()
                raise TransportError(f"agent on {self.label} refused hello: {exc}",
                                     host=self.label) from None
            except BaseException:
                session.close()
                raise
            if info.get("archive_sha256") in (None, bundle.sha256):
                self.info = info
                log.info("agent on %s started (pid %s, python %s)", self.label,
                         info.get("pid"), info.get("python"))
                return session
            log.warning("agent archive on %s does not match its hash; uploading again",
                        self.label)
            session.close()
        raise TransportError(f"the agent archive on {self.label} is corrupt even after a "
                             "fresh upload", host=self.label)

    def close(self) -> None:
        """Stop the agent (its stdin closes) and the connection."""
        with self._lock:
            if self._session is not None:
                self._session.close()
            self._session = None
            self._connector.close()


def _identity(target: Target) -> tuple[object, ...]:
    if isinstance(target, SshTarget):
        return ("ssh", target.host, target.port, target.user, target.host_key.split()[:2][1],
                target.sudo, target.python, target.docker_socket)
    if isinstance(target, LocalTarget):
        return ("local", target.netns, target.python, target.docker_socket, target.sudo)
    raise TypeError(f"not a transport target: {type(target).__name__}")


_agents: dict[tuple[object, ...], Agent] = {}
_agents_lock = threading.Lock()
_override: list[Callable[[Target], Agent]] = []
"""Set by ``vlaninfra.transport.testing.override_agents`` (tests only)."""


def agent_for(target: Target) -> Agent:
    """The shared :class:`Agent` of ``target`` in this process (created lazily).

    Targets with the same identity (host, port, user, pinned key, sudo, python, socket; or
    netns for local ones) share one connection and one agent process.

    Example: ``agent_for(LocalTarget(netns="vx-h1")).call("ping")["pid"]``
    """
    if _override:
        return _override[-1](target)
    key = _identity(target)
    with _agents_lock:
        agent = _agents.get(key)
        if agent is None:
            agent = _agents[key] = Agent(target)
        return agent


def close_all() -> None:
    """Close every cached agent and connection (their agent processes exit)."""
    with _agents_lock:
        agents = list(_agents.values())
        _agents.clear()
    for agent in agents:
        try:
            agent.close()
        except Exception:
            log.debug("closing agent on %s failed", agent.label, exc_info=True)


atexit.register(close_all)
