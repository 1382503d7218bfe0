"""Docker ops through a real agent against a throw-away dockerd in a throw-away namespace."""

from __future__ import annotations

import contextlib
import errno
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from tests.lab._agent_fixtures import Dockerd, dockerd, netns
from tests.typed_calls import call
from vlaninfra.host import marks, oplock
from vlaninfra.host.context import Context
from vlaninfra.host.contract import (
    NETWORK_CREATE,
    NETWORK_INSPECT,
    NETWORK_REMOVE,
    Driver,
    IpamPool,
    MacvlanMode,
    Mark,
    Named,
    NetworkCreate,
    NetworkRemove,
    NetworkSpec,
    NetworkState,
    Removed,
    decode,
    encode,
    run,
)
from vlaninfra.transport import Agent, HostError, LocalTarget, agent_for, close_all

pytestmark = pytest.mark.lab

IPAM = [{"subnet": "192.0.2.0/24", "gateway": "192.0.2.1", "ip_range": "192.0.2.128/26",
         "aux_addresses": {"shim": "192.0.2.250"}}]


@pytest.fixture(scope="module")
def daemon() -> Iterator[tuple[str, Dockerd]]:
    with netns("dk") as ns, dockerd(ns) as d:
        try:
            yield ns, d
        finally:
            close_all()


@pytest.fixture
def agent(daemon: tuple[str, Dockerd]) -> Iterator[Agent]:
    ns, d = daemon
    a = agent_for(LocalTarget(netns=ns, docker_socket=d.socket))
    yield a
    # Straight through the daemon: tests leave objects of other owners the agent keeps.
    api: Any = d.api()
    for c in ("web", "web2", "orphan"):
        with contextlib.suppress(Exception):
            api.remove_container(c, force=True)
    with contextlib.suppress(Exception):
        api.remove_network("lan")


LAN = NetworkSpec("lan", Driver.MACVLAN, "eth0", MacvlanMode.BRIDGE,
                  ipam=tuple(decode(IpamPool, p, "ipam") for p in IPAM),
                  labels={"vlaninfra.test": "1"})


def _lan(agent: Agent) -> NetworkState:
    return run(agent, NETWORK_CREATE, NetworkCreate(LAN))


def test_version_and_image(agent: Agent, daemon: tuple[str, Dockerd]) -> None:
    v = agent.call("docker.version")
    assert v["version"].startswith("20.10") or v["api_version"]
    assert agent.call("docker.image.exists", name=daemon[1].image) is True
    assert agent.call("docker.image.exists", name="vxa-nope:lab") is False


def test_network_create_inspect_remove(agent: Agent) -> None:
    before = agent.call("host.snapshot")
    net = _lan(agent)
    assert net.driver == "macvlan" and net.parent_preexisted is True
    assert (net.parent, net.mode, net.flag) == ("eth0", "bridge", None)
    assert encode(net.ipam) == IPAM
    assert net.labels == {"vlaninfra.test": "1", **marks.labels("adhoc", None, None)}
    assert (net.internal, net.enable_ipv6, net.containers) == (False, False, ())
    again = agent.call("docker.network.inspect", name="lan")
    assert again["options"] == {"parent": "eth0", "macvlan_mode": "bridge"}
    assert run(agent, NETWORK_INSPECT, Named("lan")) == replace(net, parent_preexisted=None)
    assert agent.call("docker.network.inspect", name=net.id[:6]) is None  # names only
    assert _lan(agent).adopted is True  # its own mark: a retried create converges
    with pytest.raises(HostError) as info:
        run(agent, NETWORK_CREATE, NetworkCreate(LAN, Mark("p/b")))
    assert info.value.errno == errno.EEXIST and info.value.details["id"] == net.id
    assert "owned by stack 'adhoc'" in info.value.message
    assert run(agent, NETWORK_REMOVE, NetworkRemove("lan")) == Removed(True)
    assert run(agent, NETWORK_REMOVE, NetworkRemove("lan")) == Removed(False)
    assert agent.call("docker.network.inspect", name="lan") is None
    assert agent.call("host.snapshot") == before


def test_network_create_rejected_by_docker_leaves_nothing(agent: Agent) -> None:
    before = agent.call("host.snapshot")
    with pytest.raises(HostError) as info:
        run(agent, NETWORK_CREATE, NetworkCreate(replace(
            LAN, ipam=(IpamPool("192.0.2.0/24", "198.51.100.1"),))))
    assert info.value.errno is not None and info.value.details.get("http_status")
    assert agent.call("host.snapshot") == before


def test_container_lifecycle(agent: Agent, daemon: tuple[str, Dockerd]) -> None:
    _lan(agent)
    c = call(agent, "docker.container.create", name="web", image=daemon[1].image,
                   command=["/bin/sleep", "3600"], network="lan", ipv4="192.0.2.130",
                   mac="02:42:c0:00:02:82", labels={"vlaninfra.test": "1"}, hostname="web")
    assert c["running"] is True and c["restart_policy"] == "unless-stopped"
    assert c["networks"]["lan"]["ipv4"] == "192.0.2.130"
    assert c["networks"]["lan"]["mac"] == "02:42:c0:00:02:82"
    assert (c["image"], c["command"], marks.without_marks(c["labels"]), c["hostname"]) == (
        daemon[1].image, ["/bin/sleep", "3600"], {"vlaninfra.test": "1"}, "web")
    net = agent.call("docker.network.inspect", name="lan")
    assert net["containers"]["web"]["ipv4"] == "192.0.2.130"
    with pytest.raises(HostError) as info:
        agent.call("docker.network.remove", name="lan")
    assert info.value.errno == errno.EBUSY and info.value.details["containers"] == ["web"]
    with pytest.raises(HostError) as info:
        call(agent, "docker.container.create", name="web", image=daemon[1].image, spec="other")
    assert info.value.errno == errno.EEXIST and "with another spec" in info.value.message
    upd = call(agent, "docker.container.update", name="web", restart_policy="always")
    assert upd["restart_policy"] == "always" and upd["id"] == c["id"]
    upd = call(agent, "docker.container.update", name="web", restart_policy="on-failure:3")
    assert upd["restart_policy"] == "on-failure:3"
    assert call(agent, "docker.container.remove", name="web") == {"removed": True}
    assert call(agent, "docker.container.remove", name="web") == {"removed": False}
    assert agent.call("docker.container.inspect", name="web") is None


def _earlier_agent(daemon: tuple[str, Dockerd], name: str, seconds: float) -> threading.Thread:
    """An earlier run's agent finishing its failed create of ``name`` on "lan" (its run was
    interrupted): it holds the change lock of ``name`` as an agent does, with the container
    made, then removes it again after ``seconds`` and lets go."""
    d = daemon[1]
    api: Any = d.api()
    made = api.create_container(d.image, command=["/bin/sleep", "3600"], name=name,
                                host_config=api.create_host_config(network_mode="lan"))
    api.start(made["Id"])
    holding = threading.Event()

    def finish() -> None:
        with oplock.changing(Context(d.socket), "container", name):
            holding.set()
            time.sleep(seconds)
            api.remove_container(made["Id"], force=True)

    t = threading.Thread(target=finish)
    t.start()
    assert holding.wait(10)
    return t


def test_changes_wait_for_an_earlier_agents_change_of_the_same_container(
        agent: Agent, daemon: tuple[str, Dockerd]) -> None:
    """The network's removal (a `destroy` right after an interrupted `up`) waits for the
    rollback of a container on it instead of failing EBUSY naming it; a create of that name
    waits too and makes its own instead of adopting the one about to go."""
    _lan(agent)
    earlier = _earlier_agent(daemon, "web", 1.0)
    started = time.monotonic()
    assert run(agent, NETWORK_REMOVE, NetworkRemove("lan")) == Removed(True)
    assert time.monotonic() - started >= 0.8
    earlier.join()
    _lan(agent)
    earlier = _earlier_agent(daemon, "web", 1.0)
    c = call(agent, "docker.container.create", name="web", image=daemon[1].image,
             command=["/bin/sleep", "3600"], network="lan", ipv4="192.0.2.130")
    earlier.join()
    assert c["running"] is True and not c.get("adopted")
    assert agent.call("docker.container.inspect", name="web")["id"] == c["id"]
    assert not oplock.LOCK_DIR.joinpath(
        oplock.path_of(Context(daemon[1].socket), "container", "web").name).exists()


def test_a_container_leaves_its_network_after_an_earlier_agents_container_left_it(
        agent: Agent, daemon: tuple[str, Dockerd]) -> None:
    """An earlier run's agent is disconnecting a container of "lan" (moby/moby#43286: two at
    once can leave Docker 20.10 counting an endpoint on it for good): this agent's removal
    of another container of "lan" leaves the network only after it."""
    _lan(agent)
    call(agent, "docker.container.create", name="web", image=daemon[1].image,
         command=["/bin/sleep", "3600"], network="lan", ipv4="192.0.2.130")
    holding, go = threading.Event(), threading.Event()

    def earlier() -> None:
        with oplock.changing(Context(daemon[1].socket), "endpoints", "lan"):
            holding.set()
            go.wait(10)

    t = threading.Thread(target=earlier)
    t.start()
    assert holding.wait(10)
    removal = threading.Thread(target=lambda: call(agent, "docker.container.remove",
                                                    name="web"))
    removal.start()
    time.sleep(1.0)
    found = agent.call("docker.container.inspect", name="web")
    assert found is not None and "lan" in found["networks"]  # still waiting to leave "lan"
    assert removal.is_alive()
    go.set()
    t.join()
    removal.join(30)
    assert agent.call("docker.container.inspect", name="web") is None
    assert run(agent, NETWORK_REMOVE, NetworkRemove("lan")) == Removed(True)


def test_connect_and_disconnect_are_idempotent(agent: Agent,
                                               daemon: tuple[str, Dockerd]) -> None:
    _lan(agent)
    c = call(agent, "docker.container.create", name="web", image=daemon[1].image,
                   command=["/bin/sleep", "3600"], network=None)
    assert c["networks"] == {"none": c["networks"]["none"]}
    call(agent, "docker.network.disconnect", network="none", container="web")
    c = call(agent, "docker.network.connect", network="lan", container="web",
                   ipv4="192.0.2.131")
    assert c["networks"]["lan"]["ipv4"] == "192.0.2.131"
    again = call(agent, "docker.network.connect", network="lan", container="web",
                       ipv4="192.0.2.131")
    assert again["networks"]["lan"] == c["networks"]["lan"]
    c = call(agent, "docker.network.disconnect", network="lan", container="web")
    assert "lan" not in c["networks"]
    assert call(agent, "docker.network.disconnect", network="lan", container="web") == c
    assert call(agent, "docker.network.disconnect", network="lan", container="nope") is None


def test_container_create_is_transactional(agent: Agent, daemon: tuple[str, Dockerd]) -> None:
    image = daemon[1].image
    api: Any = daemon[1].api()
    before = agent.call("host.snapshot")
    # missing network: refused before anything is created
    with pytest.raises(HostError) as info:
        call(agent, "docker.container.create", name="orphan", image=image,
                   command=["/bin/sleep", "1"], network="nonet")
    assert info.value.errno == errno.ENOENT and "nonet" in info.value.message
    # missing image: never pulled
    with pytest.raises(HostError) as info:
        call(agent, "docker.container.create", name="orphan", image="vxa-nope:lab",
                   network=None)
    assert info.value.errno == errno.ENOENT and "vxa-nope:lab" in info.value.message
    assert agent.call("host.snapshot") == before
    # docker creates the container, then starting it fails (address taken): rolled back
    _lan(agent)
    call(agent, "docker.container.create", name="web", image=image,
               command=["/bin/sleep", "3600"], network="lan", ipv4="192.0.2.130")
    with pytest.raises(HostError):
        call(agent, "docker.container.create", name="web2", image=image,
                   command=["/bin/sleep", "3600"], network="lan", ipv4="192.0.2.130")
    names = sorted(c["Names"][0] for c in api.containers(all=True))
    assert names == ["/web"]
    # attached containers (maybe another stack's) are never disconnected: EBUSY
    with pytest.raises(HostError) as busy:
        agent.call("docker.network.remove", name="lan")
    assert busy.value.errno == errno.EBUSY and "web" in busy.value.message
    assert call(agent, "docker.container.remove", name="web") == {"removed": True}
    assert run(agent, NETWORK_REMOVE, NetworkRemove("lan")) == Removed(True)


def test_objects_vlaninfra_did_not_make_are_never_touched(agent: Agent,
                                                         daemon: tuple[str, Dockerd]) -> None:
    api: Any = daemon[1].api()
    api.create_network("lan", driver="bridge")  # someone else's
    web = api.create_container(daemon[1].image, command=["/bin/sleep", "3600"], name="web")
    before = agent.call("host.snapshot")
    with pytest.raises(HostError) as info:
        _lan(agent)
    assert info.value.errno == errno.EEXIST
    assert "network 'lan' exists and is not owned by vlaninfra (no vlaninfra label)" in (
        info.value.message)
    with pytest.raises(HostError) as info:
        call(agent, "docker.container.create", name="web", image=daemon[1].image, owner="p/a")
    assert "container 'web' exists and is not owned by vlaninfra" in info.value.message
    for op, kw in (("docker.container.start", {}), ("docker.container.update",
                                                    {"restart_policy": "always"})):
        with pytest.raises(HostError) as info:
            agent.call(op, name="web", owner="p/a", **kw)
        assert info.value.errno == errno.EPERM
    assert call(agent, "docker.container.remove", name="web", owner="p/a")["removed"] is False
    assert agent.call("docker.network.remove", name="lan", owner="p/a")["removed"] is False
    assert agent.call("host.snapshot") == before
    # The one state recorded (made before marks existed) is claimed through its id.
    assert call(agent, "docker.container.remove", name="web", owner="p/a",
                      id=web["Id"]) == {"removed": True}
    net_id = agent.call("docker.network.inspect", name="lan")["id"]
    assert agent.call("docker.network.remove", name="lan", owner="p/a", id=net_id)[
        "removed"] is True


def test_a_container_left_created_but_not_started_is_adopted(
        agent: Agent, daemon: tuple[str, Dockerd]) -> None:
    # What an interrupted create leaves (dockerd restarted between create and start): a
    # container with this stack's mark and spec, not running.
    api: Any = daemon[1].api()
    _lan(agent)
    api.create_container(daemon[1].image, command=["/bin/sleep", "3600"], name="web",
                         labels=marks.labels("p/a", "s1", "sites.a.containers.web"))
    out = call(agent, "docker.container.create", name="web", image=daemon[1].image,
                     command=["/bin/sleep", "3600"], network="lan", ipv4="192.0.2.130",
                     owner="p/a", spec="s1")
    assert out["adopted"] is True and out["running"] is True
    with pytest.raises(HostError) as info:
        call(agent, "docker.container.create", name="web", image=daemon[1].image,
                   owner="p/b", spec="s1")
    assert "owned by stack 'p/a'" in info.value.message
    assert call(agent, "docker.container.remove", name="web", owner="p/a") == {"removed": True}
