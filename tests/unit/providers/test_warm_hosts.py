"""The first check that must reach a host starts reaching every host of the stack at once (in
the background); a run that reaches no host reaches none."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from pulumi.dynamic import ConfigureRequest
from pulumi.dynamic.config import Config

from tests.hostkeys import fake_host_key
from tests.unit.providers.test_network_probe_ahead import lan, plan_of
from tests.unit.providers.test_providers import network
from vlaninfra.providers import NetworkProvider, _warm
from vlaninfra.transport import Target
from vlaninfra.transport.testing import FakeAgent, override_agents


def _sites(*addresses: str) -> dict[str, Any]:
    hosts = [{"name": f"h{i}", "lan_address": f"192.0.2.{10 + i}",
              "ssh": {"address": a, "host_key": fake_host_key("test")}}
             for i, a in enumerate(addresses, 1)]
    return {"a": {"lan": {"subnet": "192.0.2.0/24", "gateway": "192.0.2.1"}, "hosts": hosts}}


@pytest.fixture
def reached(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The hosts an agent was asked for (any agent: the check's own and the warm-up's)."""
    monkeypatch.setattr(_warm, "_threads", None)
    seen: list[str] = []

    def agent(target: Target) -> FakeAgent:
        host = getattr(target, "host", "local")

        def facts() -> None:
            seen.append(f"facts {host}")

        fake = FakeAgent(target=target)
        fake.responses.update({
            "docker.network.inspect": None, "link.exists": True,
            "probe.run": lambda checks, timeout: [{"ok": True}] * len(checks),
            "check.facts": facts})
        seen.append(host)
        return fake

    with override_agents(agent):
        yield seen


def _configured(config: dict[str, Any]) -> NetworkProvider:
    provider = NetworkProvider()
    provider.configure(ConfigureRequest(Config(config, "vlaninfra")))
    return provider


def test_the_first_check_reaching_a_host_reaches_them_all(reached: list[str]) -> None:
    config = {"vlaninfra:sites": json.dumps(_sites("203.0.113.9", "203.0.113.10",
                                                   "203.0.113.11"))}
    assert _configured(config).check({}, lan(plan_of(1))).failures == []
    _warm.settle_warm()
    hosts = ["203.0.113.9", "203.0.113.10", "203.0.113.11"]
    assert {*hosts, *(f"facts {h}" for h in hosts)} <= set(reached)
    count = len(reached)
    _configured(config).check({}, lan(plan_of(2)))
    _warm.settle_warm()
    assert not [r for r in reached[count:] if r.startswith("facts")]  # once per process


def test_a_host_that_fails_leaves_the_others_warmed(reached: list[str]) -> None:
    sites = _sites("203.0.113.9", "203.0.113.10")
    sites["a"]["hosts"][0]["ssh"]["private_key_config"] = "unsetKey"  # its key is not there
    config = {"vlaninfra:sites": json.dumps(sites)}
    assert _configured(config).check({}, lan(plan_of(1))).failures == []
    _warm.settle_warm()
    assert "facts 203.0.113.10" in reached and "203.0.113.9" not in reached


def test_a_run_that_reaches_no_host_warms_none(reached: list[str]) -> None:
    config = {"vlaninfra:sites": json.dumps(_sites("203.0.113.9", "203.0.113.10"))}
    same = network(owner="vlaninfra/test")
    assert _configured(config).check(same, same).failures == []
    _warm.settle_warm()
    assert reached == []


@pytest.mark.parametrize("sites", ["{not json", json.dumps(
    {"a": {**_sites("203.0.113.9")["a"], "lan": {"subnet": "not-a-subnet"}}})])
def test_a_config_the_program_would_refuse_warms_nothing(reached: list[str], sites: str) -> None:
    assert _configured({"vlaninfra:sites": sites}).check({}, lan(plan_of(1))).failures == []
    _warm.settle_warm()
    assert "203.0.113.9" not in reached and reached  # only the check's own host
