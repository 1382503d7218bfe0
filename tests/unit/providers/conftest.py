"""The providers' agent, replaced through the transport's `override_agents` seam by a typed
stand-in (no host): typed ops decode their args as the agent does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from vlaninfra.providers import _container
from vlaninfra.transport.testing import override_agents

from .typed_host import TypedAgent


@pytest.fixture
def agent(monkeypatch: pytest.MonkeyPatch) -> Iterator[TypedAgent]:
    fake = TypedAgent()
    monkeypatch.setattr(_container, "_answers", {})  # no probe answer from another test
    monkeypatch.setattr(_container, "_batches", {})
    with override_agents(fake):
        yield fake
