"""The provider-facing test doubles in vlaninfra.transport.testing."""

from __future__ import annotations

import errno

import pytest

from vlaninfra.transport import HostError, LocalTarget, agent_for
from vlaninfra.transport.testing import FakeAgent, RecordingAgent, override_agents


def test_fake_agent_answers_records_and_fails() -> None:
    fake = FakeAgent({"link.exists": True,
                      "link.get": lambda name: {"name": name, "up": True}})
    fake.fail("docker.network.create", errno.EEXIST, "network 'lan' already exists",
              id="abc")
    assert fake.call("link.exists", name="eth0") is True
    assert fake.call("link.get", name="eth0") == {"name": "eth0", "up": True}
    with pytest.raises(HostError) as info:
        fake.call("docker.network.create", name="lan")
    assert info.value.errno == errno.EEXIST and info.value.details == {"id": "abc"}
    with pytest.raises(HostError) as info:
        fake.call("shim.ensure", name="shim0")
    assert info.value.errno == errno.EOPNOTSUPP
    assert fake.ops() == ["link.exists", "link.get", "docker.network.create", "shim.ensure"]
    assert fake.calls_to("link.get") == [{"name": "eth0"}]
    assert fake.calls[2].error is not None and fake.calls[0].result is True


def test_fake_results_are_copies() -> None:
    fake = FakeAgent({"route.list": [{"dst": "192.0.2.0/24"}]})
    fake.call("route.list")[0]["dst"] = "changed"
    assert fake.call("route.list") == [{"dst": "192.0.2.0/24"}]


def test_override_agents_and_recording() -> None:
    fake = FakeAgent({"ping": {"pid": 1}})
    with override_agents(fake):
        assert agent_for(LocalTarget(netns="anything")) is fake
    assert agent_for(LocalTarget(netns="anything")) is not fake
    rec = RecordingAgent(fake)
    with override_agents(lambda target: rec):
        assert agent_for(LocalTarget()).call("ping") == {"pid": 1}
    assert rec.calls[0].op == "ping" and rec.calls[0].result == {"pid": 1}
