"""The :class:`Agent` handle and the per-process cache of agents (one per host)."""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol

from vlaninfra._env import env_seconds
from vlaninfra.transport._bootstrap import REFUSED, STALE, TOO_OLD
from vlaninfra.transport._errors import (
    AgentExitedError,
    HostError,
    OutcomeUnknownError,
    TransportError,
)
from vlaninfra.transport._facts import FACT_OPS, MAX_AGE, answer, in_check
from vlaninfra.transport._local import LocalConnector
from vlaninfra.transport._session import Channel, Session, secs
from vlaninfra.transport._stats import bump, trace
from vlaninfra.transport._targets import LocalTarget, SshTarget, Target
from vlaninfra.transport._zipapp import Bundle, build_bundle

__all__ = ["DOCKER_OPS", "READ_OPS", "Agent", "agent_for", "close_all"]

log = logging.getLogger("vlaninfra.transport")


DOCKER_OPS = frozenset({
    "docker.container.create", "docker.container.start", "docker.container.remove",
    "docker.container.update", "docker.network.create", "docker.network.remove",
    "docker.network.connect", "docker.network.disconnect", "debug.sleep",
    "check.facts",  # inspects every network and container of the host
})
"""Ops that wait on the Docker daemon's work (or on purpose): the long deadline applies."""

READ_OPS = frozenset({
    "link.get", "link.exists", "route.list", "route.get", "shim.read", "vlan.read",
    "route.read", "docker.version",
    "docker.image.exists", "docker.network.inspect", "docker.container.inspect",
})
"""Ops that only read the host: calls of these made while another is on its way are sent
together as one ``batch`` round trip (the engine checks and reads every resource at once)."""
BATCH_MAX = 64
"""At most this many reads go in one ``batch`` request."""


class _Connector(Protocol):
    step: str

    def start(self, bundle: Bundle) -> Channel: ...

    def upload(self, bundle: Bundle) -> None: ...

    def abort(self) -> None: ...

    def close(self) -> None: ...


def docker_deadline() -> float:
    """Seconds for the Docker ops in :data:`DOCKER_OPS` (``VLANINFRA_DOCKER_DEADLINE``, 120):
    the controller's deadline for each, and the agent's own Docker timeout (its ``hello``)."""
    return env_seconds("VLANINFRA_DOCKER_DEADLINE", 120.0)


class Agent:
    """A handle on the agent process of one host; safe to share between threads.

    The process is started on first use (through the trusted bootstrap, uploading the
    archive when the host has no copy with the right sha256) and restarted when a call finds
    it gone; a session dropped for a deadline or a silent peer also drops its SSH connection,
    so the next call reconnects. Calls from many threads run concurrently on the host.

    Deadlines (seconds, per instance, defaults from the environment):

    - ``op_deadline`` (``VLANINFRA_OP_DEADLINE``, 30): facts, netlink ops, ping, batch;
    - ``docker_deadline`` (``VLANINFRA_DOCKER_DEADLINE``, 120): Docker create/start/remove/
      update/connect/disconnect (:data:`DOCKER_OPS`);
    - ``start_deadline`` (``VLANINFRA_START_DEADLINE``, 60): connect, upload, start, hello;
    - ``peer_timeout`` (``VLANINFRA_PEER_TIMEOUT``, 15): silence while calls are pending
      (the agent is pinged every ``peer_timeout / 3`` seconds) before the peer counts as dead.

    A call that may have reached the agent without an answer raises
    :class:`OutcomeUnknownError`.

    Example::

        agent = agent_for(SshTarget("192.0.2.10", private_key=..., host_key=...))
        agent.call("link.get", name="eth0")["up"]   # → True
    """

    def __init__(self, target: Target, connector: _Connector | None = None) -> None:
        self.target = target
        """Where the agent runs."""
        self.label = target.label
        """``user@host:port`` / ``local`` / ``local netns <ns>``."""
        self.info: dict[str, Any] = {}
        """The agent's ``hello`` answer (pid, python, kernel, hostname...) once started."""
        self.op_deadline = env_seconds("VLANINFRA_OP_DEADLINE", 30.0)
        """Seconds for facts, netlink ops, ping and batch."""
        self.docker_deadline = docker_deadline()
        """Seconds for the Docker ops in :data:`DOCKER_OPS`."""
        self.start_deadline = env_seconds("VLANINFRA_START_DEADLINE", 60.0)
        """Seconds for connecting, uploading, starting the agent and its ``hello``."""
        self.peer_timeout = env_seconds("VLANINFRA_PEER_TIMEOUT", 15.0)
        """Seconds of silence (while calls are pending) before the peer counts as dead."""
        if connector is None and isinstance(target, SshTarget):
            # paramiko is imported on first use: a run that contacts no host never needs it.
            from vlaninfra.transport._broker import BrokerConnector, brokering

            if brokering():  # one connection and agent shared by the run's processes
                connector = BrokerConnector(target)
            else:
                from vlaninfra.transport._ssh import SshConnector

                connector = SshConnector(target)
        elif connector is None and isinstance(target, LocalTarget):
            connector = LocalConnector(target)
        if connector is None:
            raise TypeError(f"not a transport target: {type(target).__name__}")
        self._connector = connector
        self._session: Session | None = None
        self._lock = threading.Lock()
        self._failed: tuple[float, TransportError] | None = None
        self._reads: list[tuple[str, dict[str, Any], Future[Any]]] = []
        self._reads_lock = threading.Lock()
        self._reading = False
        self._facts: tuple[float, dict[str, Any] | None] | None = None
        self._facts_lock = threading.Lock()
        self._starting = False

    def deadline_for(self, op: str) -> float:
        """The deadline of ``op`` in seconds (``docker_deadline`` or ``op_deadline``)."""
        return self.docker_deadline if op in DOCKER_OPS else self.op_deadline

    def call(self, op: str, /, **args: object) -> Any:
        """Run ``op`` on the host with keyword ``args``; returns its JSON result.

        Raises :class:`HostError` (with ``errno``) when the op fails on the host,
        :class:`OutcomeUnknownError` when the request may have reached the host but no
        answer came (deadline, dead peer, agent died), and :class:`TransportError` when the
        host cannot be reached or the agent cannot start (nothing was sent). A session that
        had ended before the request was sent is replaced once (nothing ran); if that one
        ends too, :class:`AgentExitedError` (nothing was sent) is raised.

        Example: ``agent.call("shim.delete", name="shim0")`` → ``{"deleted": True}``
        """
        bump("calls")
        if op in FACT_OPS and in_check():
            facts = self.check_facts()
            known, result = answer(facts, op, args) if facts is not None else (False, None)
            if known:
                return result
        if op in READ_OPS:
            return self._read(op, dict(args))
        return self._send(op, dict(args))

    def _send(self, op: str, args: dict[str, Any]) -> Any:
        for attempt in range(2):
            session = self._session_for_call()
            started = time.monotonic()
            bump("requests")
            try:
                result = session.call(op, args, self.deadline_for(op))
                trace(self.label, "call", op, started)
                return result
            except OutcomeUnknownError:
                self._drop(session)
                raise
            except AgentExitedError:
                # The session had died before the request was sent: nothing ran, so one
                # retry on a fresh session is safe (only a sent request is outcome unknown).
                self._drop(session)
                if attempt:
                    raise
                log.info("agent session to %s had ended before %s was sent; starting a "
                         "new one", self.label, op)
        raise AssertionError("unreachable")

    def check_facts(self) -> dict[str, Any] | None:
        """The host's check snapshot (``check.facts``), fetched once per :data:`MAX_AGE`
        seconds by whichever check asks first; None when the agent could not make one (the
        checks then ask the host one by one)."""
        with self._facts_lock:
            if self._facts is None or time.monotonic() - self._facts[0] > MAX_AGE:
                try:
                    facts: dict[str, Any] | None = self._send("check.facts", {})
                except (HostError, TransportError) as exc:
                    log.info("no check snapshot from %s (%s); asking per object", self.label,
                             exc)
                    facts = None
                self._facts = (time.monotonic(), facts)
            return self._facts[1]

    def _read(self, op: str, args: dict[str, Any]) -> Any:
        """A read op: sent at once when no read is on its way, else queued; the caller that
        found the queue idle sends what queues up meanwhile, as one ``batch`` per round trip
        (entries run concurrently on the host), until the queue is empty."""
        future: Future[Any] = Future()
        with self._reads_lock:
            self._reads.append((op, args, future))
            lead, self._reading = not self._reading, True
        if lead:
            self._send_reads()
        return future.result()

    def _send_reads(self) -> None:
        while True:
            with self._reads_lock:
                calls, self._reads = self._reads[:BATCH_MAX], self._reads[BATCH_MAX:]
                if not calls:
                    self._reading = False
                    return
            try:
                if len(calls) == 1:
                    op, args, future = calls[0]
                    future.set_result(self._send(op, args))
                    continue
                answers = self._send("batch", {"calls": [{"op": op, "args": args}
                                                         for op, args, _ in calls],
                                               "parallel": True})
            except BaseException as exc:  # every queued caller gets the failure
                if not isinstance(exc, Exception):  # interrupted: nobody sends the rest
                    with self._reads_lock:
                        calls, self._reads, self._reading = calls + self._reads, [], False
                for _, _, future in calls:
                    if not future.done():
                        future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            if not isinstance(answers, list) or len(answers) != len(calls):
                bad = TransportError(f"agent on {self.label} answered a batch of {len(calls)} "
                                     "reads with something else", host=self.label)
                for _, _, future in calls:
                    future.set_exception(bad)
                continue
            for (op, _, future), reply in zip(calls, answers, strict=True):
                if reply.get("ok"):
                    future.set_result(reply.get("result"))
                else:
                    error = reply.get("error") or {}
                    future.set_exception(HostError(
                        str(error.get("message") or "unknown error"), op=op, host=self.label,
                        errno=error.get("errno"), details=error.get("details")))

    def start(self) -> dict[str, Any]:
        """Start (or check) the agent now instead of on first call; returns ``info``."""
        self._session_for_call()
        return self.info

    def _drop(self, session: Session) -> None:
        """Forget a failed session; after an abort, its connection goes too."""
        with self._lock:
            if self._session is session:
                self._session = None
            self._release(session)

    def _release(self, session: Session) -> None:
        session.close()  # release the channel (pipes, exit status)
        if session.aborted:
            self._connector.close()

    def _session_for_call(self) -> Session:
        asked = time.monotonic()
        with self._lock:
            session = self._session
            if session is not None and session.alive:
                return session
            if session is not None:
                log.info("agent on %s is gone; starting it again", self.label)
                self._release(session)
                self._session = None
            failed = self._failed
            if failed is not None and failed[0] >= asked:
                # Another caller's start failed while this one waited: share its verdict
                # instead of trying (and waiting out a deadline) once per caller.
                raise type(failed[1])(failed[1].message, host=self.label)
            self._starting = True
            try:
                self._session = self._start()
            except TransportError as exc:
                self._failed = (time.monotonic(), exc)
                raise
            finally:
                self._starting = False
            self._failed = None
            return self._session

    def _start(self) -> Session:
        bundle = build_bundle()
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            self._connector.abort()

        timer = threading.Timer(self.start_deadline, expire)
        timer.daemon = True
        timer.start()
        started = time.monotonic()
        try:
            session = self._start_steps(bundle)
            trace(self.label, "start", "", started)
            return session
        except (TransportError, OSError, EOFError) as exc:
            if not expired.is_set():
                raise
            raise TransportError(
                f"could not start the agent on {self.label} within {secs(self.start_deadline)} "
                f"(stuck while {self._connector.step}); the connection was dropped. Check the "
                "network path and the host's load, then run again", host=self.label) from exc
        finally:
            timer.cancel()

    def _start_steps(self, bundle: Bundle) -> Session:
        for attempt in range(2):
            channel = self._connector.start(bundle)  # counts "agent_starts" (not attaches)
            session = Session(channel, self.label, peer_timeout=self.peer_timeout,
                              ping_interval=self.peer_timeout / 3)
            try:
                session.wait_ready(self.start_deadline)
                info = session.call("hello", {"docker_socket": self.target.docker_socket,
                                              "docker_timeout": self.docker_deadline},
                                    self.op_deadline)
            except AgentExitedError as exc:
                self._release(session)
                if session.exit_status == STALE and attempt == 0:
                    log.info("no agent archive with the expected sha256 on %s; uploading it",
                             self.label)
                    self._connector.upload(bundle)
                    continue
                raise self._start_error(session, exc) from None
            except HostError as exc:
                self._release(session)
                raise TransportError(f"agent on {self.label} refused hello: {exc}",
                                     host=self.label) from None
            except BaseException:
                self._release(session)
                raise
            self.info = info
            log.info("agent on %s started (pid %s, python %s)", self.label, info.get("pid"),
                     info.get("python"))
            return session
        raise TransportError(f"the agent archive on {self.label} does not have the expected "
                             "sha256 even after a fresh upload", host=self.label)

    def _start_error(self, session: Session, exc: AgentExitedError) -> AgentExitedError:
        """Why the agent did not start, in the user's terms."""
        status = session.exit_status
        tail = session.stderr_tail()
        text = " ".join(tail).lower()
        python = self.target.python
        if self.target.sudo and any(w in text for w in ("password is required", "sudoers",
                                                        "not allowed to")):
            message = (f"sudo on {self.label} asks for a password (or refuses): allow "
                       f"passwordless sudo for {python} (NOPASSWD in sudoers) or set sudo: "
                       f"false{session.stderr_hint()}")
        elif self.target.sudo and "sudo" in text and "not found" in text:
            message = f"sudo is not installed on {self.label}: install it or set sudo: false"
        elif status == 127 or (status == 1 and "not found" in text and python in text):
            message = (f"{python!r} was not found on {self.label}'s PATH: install Python "
                       f">= 3.10 there or set the host's python to its full path"
                       f"{session.stderr_hint()}")
        elif session.aborted:  # the stream broke or the start stalled: that says it all
            message = exc.message
        elif status in (REFUSED, TOO_OLD):
            lines = [line for line in tail if line.startswith("vlaninfra bootstrap:")]
            reason = lines[-1] if lines else exc.message
            message = f"refusing to start the agent on {self.label}: {reason}"
        else:
            message = (f"{exc.message}; is {python!r} a Python >= 3.10 on that host"
                       + (" and is passwordless sudo allowed?" if self.target.sudo else "?"))
        return AgentExitedError(message, host=self.label)

    def close(self) -> None:
        """Stop the agent (its stdin closes) and the connection. A start under way is aborted
        rather than waited for: a host the run never needed (a warm-up's) must not hold the
        provider's exit for a connect timeout."""
        if self._starting:
            self._connector.abort()
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
