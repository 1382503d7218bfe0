"""The network's check probes its containers' new addresses in one call; their checks then
take the answers from the provider process's cache (fake agent)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.providers.test_providers import container, network
from vlaninfra.host import marks
from vlaninfra.providers import ContainerProvider, NetworkProvider, _container
from vlaninfra.transport.testing import FakeAgent

FREE = {"ok": True, "ms": 1000.0, "detail": "no other LAN device answers"}
TAKEN = {"ok": False, "ms": 300.0, "detail": "x", "answered_by": "7e:24:a6:85:ad:98"}
OWNER = "vlaninfra/test"


def planned(name: str, address: str, key: str = "ipv4",
            mac: str | None = "02:42:c0:00:02:82") -> dict[str, Any]:
    return {"key": key, "address": address, "mac": mac, "device": "eth0", "name": name}


def web(i: int, **over: Any) -> dict[str, Any]:
    return container(**{"name": f"web{i}", "ipv4": f"192.0.2.{130 + i}",
                        "mac": f"02:42:c0:00:02:{i:02x}", "lan_device": "eth0", "owner": OWNER,
                        **over})


def lan(*addresses: dict[str, Any]) -> dict[str, Any]:
    return network(owner=OWNER, lan_addresses=list(addresses))


def plan_of(i: int) -> dict[str, Any]:
    return planned(f"web{i}", f"192.0.2.{130 + i}", mac=f"02:42:c0:00:02:{i:02x}")


def _answer_each(answers: dict[str, dict[str, Any]]) -> Any:
    return lambda checks, timeout: [answers.get(c["address"], FREE) for c in checks]


@pytest.fixture
def host(agent: FakeAgent) -> FakeAgent:
    agent.responses.update({"docker.image.exists": True, "link.exists": True,
                            "docker.network.inspect": None, "docker.container.inspect": None,
                            "probe.run": _answer_each({})})
    return agent


def probes(agent: FakeAgent) -> list[list[str]]:
    return [[c["address"] for c in call.args["checks"]] for call in agent.calls
            if call.op == "probe.run"]


def test_a_new_network_probes_all_its_addresses_once_and_containers_reuse_it(
        host: FakeAgent) -> None:
    host.responses["probe.run"] = _answer_each({"192.0.2.132": TAKEN})
    six = [plan_of(i) for i in range(1, 4)] + [
        planned("web1", "2001:db8::131", "ipv6", "02:42:c0:00:02:01")]
    assert NetworkProvider().check({}, lan(*six)).failures == []
    _container.settle()  # the probe runs in the background
    assert probes(host) == [["192.0.2.131", "192.0.2.132", "192.0.2.133", "2001:db8::131"]]
    assert [c["kind"] for c in host.calls[-1].args["checks"]] == ["arp-unique"] * 3 + [
        "ndp-unique"]
    results = [ContainerProvider().check({}, web(1, ipv6="2001:db8::131")),
               ContainerProvider().check({}, web(2)), ContainerProvider().check({}, web(3))]
    assert len(probes(host)) == 1  # every answer came from the network's probe
    assert [[f.property for f in r.failures] for r in results] == [[], ["ipv4"], []]
    assert results[1].failures[0].reason.startswith(
        "sites.a.containers[0].ipv4: container 'web2' would get 192.0.2.132 on host h1")


def test_a_container_the_network_did_not_probe_probes_itself(host: FakeAgent) -> None:
    NetworkProvider().check({}, lan(plan_of(1)))
    _container.settle()  # the probe runs in the background
    ContainerProvider().check({}, web(2))  # added later: not in the network's probe
    # another MAC than planned: another question than the network asked
    ContainerProvider().check({}, web(1, mac="02:42:c0:00:02:99"))
    assert probes(host) == [["192.0.2.131"], ["192.0.2.132"], ["192.0.2.131"]]


def test_an_old_answer_is_asked_again(host: FakeAgent, monkeypatch: pytest.MonkeyPatch) -> None:
    NetworkProvider().check({}, lan(plan_of(1)))
    _container.settle()  # the probe runs in the background
    monkeypatch.setattr(_container, "ANSWER_AGE", 0.0)
    ContainerProvider().check({}, web(1))
    assert len(probes(host)) == 2


def test_an_old_answer_is_asked_again_with_the_rest_of_its_network_probe(
        host: FakeAgent, monkeypatch: pytest.MonkeyPatch) -> None:
    """One probe per container would put a second per container on the engine's one-at-a-time
    checks: a stale answer is asked again with every address of its batch no check took."""
    NetworkProvider().check({}, lan(*(plan_of(i) for i in range(1, 5))))
    _container.settle()  # the probe runs in the background
    ContainerProvider().check({}, web(1))  # a fresh answer: taken from the network's probe
    monkeypatch.setattr(_container, "ANSWER_AGE", 0.0)
    ContainerProvider().check({}, web(2))
    monkeypatch.setattr(_container, "ANSWER_AGE", 30.0)
    assert ContainerProvider().check({}, web(3)).failures == []
    assert ContainerProvider().check({}, web(4)).failures == []
    assert probes(host) == [["192.0.2.131", "192.0.2.132", "192.0.2.133", "192.0.2.134"],
                            ["192.0.2.132", "192.0.2.133", "192.0.2.134"]]


def test_unjudged_answers_are_not_kept(host: FakeAgent) -> None:
    host.responses["probe.run"] = lambda checks, timeout: [
        {"ok": False, "ms": 1.0, "detail": "OSError: no such device"} for _ in checks]
    NetworkProvider().check({}, lan(plan_of(1)))
    _container.settle()  # the probe runs in the background
    assert ContainerProvider().check({}, web(1)).failures == []
    assert len(probes(host)) == 2


def test_a_run_that_adds_no_address_asks_no_host(host: FakeAgent) -> None:
    before = lan(plan_of(1), plan_of(2))
    assert NetworkProvider().check(before, lan(plan_of(1), plan_of(2))).failures == []
    _container.settle()  # the probe runs in the background
    assert host.ops() == []
    NetworkProvider().check(before, lan(plan_of(1), plan_of(2), plan_of(3)))
    _container.settle()  # the probe runs in the background
    assert probes(host) == [["192.0.2.133"]]


def test_addresses_this_stacks_containers_hold_are_not_probed(host: FakeAgent) -> None:
    def inspect(name: str) -> dict[str, Any] | None:
        held = {"web1": ("192.0.2.131", OWNER), "web2": ("192.0.2.99", OWNER),
                "web3": ("192.0.2.133", "other/stack")}
        if name not in held:
            return None
        address, owner = held[name]
        return {"id": f"id-{name}", "name": name, "labels": marks.labels(owner, None, None),
                "networks": {"lan": {"ipv4": address}}}  # the agent's inspect form

    host.responses["docker.container.inspect"] = inspect
    # An existing stack's first run with this property: nothing new is probed.
    NetworkProvider().check(network(owner=OWNER), lan(*(plan_of(i) for i in range(1, 5))))
    _container.settle()  # the probe runs in the background
    assert probes(host) == [["192.0.2.132", "192.0.2.133", "192.0.2.134"]]


def test_a_failing_host_leaves_the_containers_to_probe_and_report(host: FakeAgent) -> None:
    host.fail("probe.run", 5, "agent gone")
    assert NetworkProvider().check({}, lan(plan_of(1))).failures == []
    _container.settle()  # the probe runs in the background
    failures = ContainerProvider().check({}, web(1)).failures
    assert [f.property for f in failures] == ["ipv4"] and "agent gone" in failures[0].reason


def test_the_addresses_are_no_reason_to_change_the_network() -> None:
    diff = NetworkProvider().diff("n1", network(owner=OWNER), lan(plan_of(1)))
    assert not diff.changes and diff.replaces == []


def test_the_probe_runs_in_the_background_and_containers_wait_for_its_answer(
        host: FakeAgent) -> None:
    import threading
    import time

    release = threading.Event()

    def slow(checks: list[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
        release.wait(5)
        return [TAKEN for _ in checks]

    host.responses["probe.run"] = slow
    began = time.monotonic()
    assert NetworkProvider().check({}, lan(plan_of(1))).failures == []
    assert time.monotonic() - began < 1  # the next check need not wait for the ARP second
    threading.Timer(0.3, release.set).start()
    failures = ContainerProvider().check({}, web(1)).failures  # waits for that answer
    assert [f.property for f in failures] == ["ipv4"] and len(probes(host)) == 1
