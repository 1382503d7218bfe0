"""Preview's duplicate-address check of the Container provider, with a fake agent."""

from __future__ import annotations

from typing import Any

from tests.unit.providers.test_providers import container
from vlaninfra.providers import ContainerProvider
from vlaninfra.transport.testing import FakeAgent

FREE = [{"ok": True, "ms": 1000.0, "detail": "no other LAN device answers"}]
TAKEN = [{"ok": False, "ms": 300.0, "detail": "x", "answered_by": "7e:24:a6:85:ad:98"}]


def _ready(agent: FakeAgent, answer: list[dict[str, Any]]) -> None:
    agent.responses.update({"docker.image.exists": True, "docker.container.inspect": None,
                            "probe.run": answer})


def test_a_new_address_another_device_answers_for_fails_preview(agent: FakeAgent) -> None:
    _ready(agent, TAKEN)
    result = ContainerProvider().check({}, container(lan_device="eth0"))
    assert [f.reason for f in result.failures] == [
        "sites.a.containers[0].ipv4: container 'web1' would get 192.0.2.130 on host h1 "
        "(203.0.113.2), but that address already answers on the LAN from MAC "
        "7e:24:a6:85:ad:98 (ARP probe on eth0): another device holds it; free it there, or "
        "give the container another address"]
    probe = next(c for c in agent.calls if c.op == "probe.run").args
    assert probe["checks"] == [{"kind": "arp-unique", "device": "eth0",
                                "address": "192.0.2.130", "own": ["02:42:c0:00:02:82"]}]
    assert probe["timeout"] <= 3.0


def test_only_addresses_about_to_be_assigned_are_probed(agent: FakeAgent) -> None:
    _ready(agent, TAKEN)
    same = ContainerProvider().check(container(lan_device="eth0"), container(lan_device="eth0"))
    assert same.failures == [] and agent.ops() == []
    assert ContainerProvider().check({}, container(lan_device=None)).failures == []
    assert "probe.run" not in agent.ops()
    moved = ContainerProvider().check(container(lan_device="eth0"),
                                      container(lan_device="eth0", ipv4="192.0.2.131"))
    assert [f.property for f in moved.failures] == ["ipv4"]


def test_a_free_or_unjudged_address_passes(agent: FakeAgent) -> None:
    _ready(agent, FREE)
    assert ContainerProvider().check({}, container(lan_device="eth0")).failures == []
    _ready(agent, [{"ok": False, "ms": 1.0, "detail": "OSError: no such device"}])
    assert ContainerProvider().check({}, container(lan_device="eth0.50")).failures == []
