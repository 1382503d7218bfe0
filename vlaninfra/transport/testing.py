"""Agent stand-ins for testing code above the transport (providers) without a host.

- :class:`FakeAgent` answers ops from canned results, handlers or errors, and records calls.
- :class:`RecordingAgent` passes calls to a real agent and records calls and outcomes.
- :func:`override_agents` makes ``agent_for`` return your stand-in for every target.

Example::

    fake = FakeAgent({"docker.network.inspect": None})
    fake.fail("docker.network.create", errno.EEXIST, "network 'lan' already exists")
    with override_agents(fake):
        ...  # code under test calls agent_for(target).call(...)
    assert fake.ops() == ["docker.network.inspect", "docker.network.create"]
"""

from __future__ import annotations

import contextlib
import copy
import errno as _errno
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from vlaninfra.transport import _agent
from vlaninfra.transport._agent import Agent
from vlaninfra.transport._broker import running_brokers, stop_brokers
from vlaninfra.transport._errors import HostError
from vlaninfra.transport._targets import LocalTarget, Target

__all__ = ["Call", "FakeAgent", "RecordingAgent", "override_agents", "running_brokers",
           "stop_brokers"]


@dataclass
class Call:
    """One recorded call."""

    op: str
    """The op name."""
    args: dict[str, Any]
    """Its keyword arguments (a deep copy)."""
    result: Any = None
    """What it returned (None if it raised)."""
    error: BaseException | None = None
    """What it raised, if anything."""
    target: Target | None = field(default=None, repr=False)
    """The target of the agent that served it."""


class FakeAgent(Agent):
    """An :class:`Agent` that never connects: answers come from ``responses``.

    A response is a value (returned as a deep copy), a callable (called with the op's
    keyword args), or an exception instance (raised). Ops without a response raise
    ``HostError(EOPNOTSUPP)`` so a missing stub is loud. Thread-safe.

    Example: ``FakeAgent({"link.exists": True}).call("link.exists", name="eth0")`` → ``True``
    """

    def __init__(self, responses: Mapping[str, Any] | None = None,
                 target: Target | None = None) -> None:
        self.target = target or LocalTarget(python="python3")
        self.label = "fake"
        self.info = {"pid": 0, "python": "3.11", "kernel": "fake", "hostname": "fake"}
        self.responses: dict[str, Any] = dict(responses or {})
        """op → value | callable | exception; edit freely between calls."""
        self.calls: list[Call] = []
        """Every call so far, in order."""
        self._calls_lock = threading.Lock()

    def fail(self, op: str, errno: int, message: str = "fake failure",
             **details: Any) -> None:
        """Make ``op`` raise a ``HostError`` with this errno."""
        self.responses[op] = HostError(message, op=op, host=self.label, errno=errno,
                                       details=details)

    def call(self, op: str, /, **args: object) -> Any:
        record = Call(op, copy.deepcopy(dict(args)), target=self.target)
        with self._calls_lock:
            self.calls.append(record)
        try:
            if op not in self.responses:
                raise HostError(f"FakeAgent has no response for {op!r}", op=op,
                                host=self.label, errno=_errno.EOPNOTSUPP)
            response = self.responses[op]
            if isinstance(response, BaseException):
                raise response
            result = response(**args) if callable(response) else copy.deepcopy(response)
        except BaseException as exc:
            record.error = exc
            raise
        record.result = result
        return result

    def start(self) -> dict[str, Any]:
        return self.info

    def check_facts(self) -> dict[str, Any] | None:
        """``check.facts`` when it has a response, else None (the checks ask one by one)."""
        if "check.facts" not in self.responses:
            return None
        facts: dict[str, Any] | None = self.call("check.facts")
        return facts

    def close(self) -> None:
        """Nothing to close."""

    def ops(self) -> list[str]:
        """The op names called so far, in order."""
        with self._calls_lock:
            return [c.op for c in self.calls]

    def calls_to(self, op: str) -> list[dict[str, Any]]:
        """The args of every call to ``op``."""
        with self._calls_lock:
            return [c.args for c in self.calls if c.op == op]


class RecordingAgent(FakeAgent):
    """Passes every call to ``inner`` (a real agent) and records it with its outcome.

    Example: ``rec = RecordingAgent(agent_for(target)); rec.call("ping"); rec.calls[0].result``
    """

    def __init__(self, inner: Agent) -> None:
        super().__init__({}, inner.target)
        self.inner = inner
        self.label = inner.label

    def call(self, op: str, /, **args: object) -> Any:
        record = Call(op, copy.deepcopy(dict(args)), target=self.target)
        with self._calls_lock:
            self.calls.append(record)
        try:
            record.result = self.inner.call(op, **args)
        except BaseException as exc:
            record.error = exc
            raise
        return record.result

    def start(self) -> dict[str, Any]:
        return self.inner.start()


@contextlib.contextmanager
def override_agents(agent: Agent | Callable[[Target], Agent]) -> Iterator[None]:
    """Make ``agent_for`` return ``agent`` (or ``agent(target)``) inside the block."""
    factory: Callable[[Target], Agent] = (
        (lambda _target: agent) if isinstance(agent, Agent) else agent)
    _agent._override.append(factory)
    try:
        yield
    finally:
        _agent._override.remove(factory)
