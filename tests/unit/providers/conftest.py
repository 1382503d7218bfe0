"""The providers' agent, replaced by the transport's own FakeAgent (no host)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from vlaninfra.providers import _base, _container
from vlaninfra.transport.testing import FakeAgent


@pytest.fixture
def agent(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAgent]:
    fake = FakeAgent()
    monkeypatch.setattr(_base.HostProvider, "agent", lambda self, props: fake)
    monkeypatch.setattr(_container, "_answers", {})  # no probe answer from another test
    yield fake
