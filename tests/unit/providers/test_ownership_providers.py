"""Ownership in the providers without a host: marks passed to the ops, name clashes reported
by `check` (so at preview), and "outcome unknown" when the transport fails mid-change."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from vlaninfra.host import marks
from vlaninfra.host.contract import (
    CONTAINER_INSPECT,
    CONTAINER_REMOVE,
    LINK_GET,
    NETWORK_CREATE,
    ROUTE_ENSURE,
    ROUTE_GET,
    SHIM_ENSURE,
    ContainerRef,
    NetworkState,
    Removed,
)
from vlaninfra.providers import (
    ContainerProvider,
    HostProvider,
    NetworkProvider,
    ProviderError,
    RouterRouteProvider,
    ShimProvider,
    VlanParentProvider,
)
from vlaninfra.providers._host import UNKNOWN
from vlaninfra.transport import AgentExitedError

from . import typed_host
from .test_providers import container, network, shim
from .test_vlan_route_providers import route, vlan
from .typed_host import TypedAgent

OWNER = "infra/prod"


def _own(props: dict[str, Any]) -> dict[str, Any]:
    return {**props, "owner": OWNER}


def test_creates_carry_the_stacks_mark(agent: TypedAgent) -> None:
    agent.serve(NETWORK_CREATE, NetworkState(
        "n1", "lan", "macvlan", "eth0", "bridge", None, (), False, False, {}, ()))
    NetworkProvider().create(_own(network()))
    call = agent.args(NETWORK_CREATE)[0]
    assert (call.mark.owner, call.mark.resource) == (OWNER, "sites.a.networks[0]")
    assert call.mark.spec == NetworkProvider().spec(network()) and len(call.mark.spec) == 12
    agent.serve(SHIM_ENSURE, typed_host.link("vshim0", kind="macvlan", index=9))
    ShimProvider().create(_own(shim()))
    assert agent.args(SHIM_ENSURE)[0].mark.owner == OWNER


def test_the_owner_is_never_a_reason_to_replace() -> None:
    legacy = network()  # made before marks: no owner recorded
    diff = NetworkProvider().diff("n1", legacy, _own(network()))
    assert diff.replaces == []


def test_container_spec_ignores_the_network_id_unknown_at_preview() -> None:
    p = ContainerProvider()
    assert p.spec(container(network_id="n1")) == p.spec(container(network_id=UNKNOWN))
    # but its network's name is part of it: a leftover on another network is not adopted
    assert p.spec(container(network="a")) != p.spec(container(network="b"))


@pytest.mark.parametrize("err", [
    AgentExitedError("the agent on h1 exited", host="root@203.0.113.2:22"),
])
def test_a_transport_failure_during_create_says_outcome_unknown(agent: TypedAgent,
                                                                err: Exception) -> None:
    agent.responses["docker.container.create"] = err
    with pytest.raises(ProviderError) as info:
        ContainerProvider().create(container())
    message = str(info.value)
    assert "outcome unknown on h1 (203.0.113.2)" in message
    assert "the next `pulumi up` (or `pulumi refresh`) reconciles it" in message
    assert "nothing was left" not in message


def test_a_host_failure_it_undid_says_nothing_was_left(agent: TypedAgent) -> None:
    agent.fail("docker.network.create", errno.EIO, "inspect failed", rolled_back=True)
    with pytest.raises(ProviderError, match="create failed, nothing was left on the host"):
        NetworkProvider().create(network())
    agent.fail("docker.network.create", errno.ENOENT, "no such parent")  # nothing said undone
    with pytest.raises(ProviderError) as info:
        NetworkProvider().create(network())
    assert "create failed: " in str(info.value) and "nothing was left" not in str(info.value)
    agent.fail("docker.container.create", errno.EIO, "left created", outcome="unknown")
    with pytest.raises(ProviderError, match="outcome unknown"):
        ContainerProvider().create(container())


def test_a_transport_failure_during_delete_says_outcome_unknown(agent: TypedAgent) -> None:
    agent.responses["shim.delete"] = AgentExitedError("gone", host="h1")
    with pytest.raises(ProviderError, match=r"outcome unknown .* remove was under way"):
        ShimProvider().delete("h1/vshim0", shim())


def _labels(owner: str, spec: str | None) -> dict[str, str]:
    return marks.labels(owner, spec, "sites.a.networks[0]")


def test_check_reports_a_network_name_taken_on_the_host(agent: TypedAgent) -> None:
    agent.responses["link.exists"] = True
    agent.responses["docker.network.inspect"] = {"id": "x", "name": "lan", "labels": {}}
    failures = NetworkProvider().check({}, _own(network())).failures
    assert [(f.property, f.reason) for f in failures] == [(
        "name",
        "sites.a.networks[0]: network 'lan' on host h1 (203.0.113.2) exists and is not owned "
        "by vlaninfra (no vlaninfra label); vlaninfra leaves it alone: rename yours in the "
        "config or remove it from the host")]
    agent.responses["docker.network.inspect"] = {"id": "x", "name": "lan",
                                                 "labels": _labels("other/s", "a")}
    failures = NetworkProvider().check({}, _own(network())).failures
    assert "owned by stack 'other/s'" in failures[0].reason
    # Its own, same spec (an interrupted create): no clash, the create adopts it.
    spec = NetworkProvider().spec(network())
    agent.responses["docker.network.inspect"] = {"id": "x", "name": "lan",
                                                 "labels": _labels(OWNER, spec)}
    assert NetworkProvider().check({}, _own(network())).failures == []


def test_check_reports_a_container_clash_even_before_its_network_exists(
        agent: TypedAgent) -> None:
    agent.serve(CONTAINER_INSPECT, typed_host.container(labels={"a": "b"}))
    news = _own(container(network_id=UNKNOWN))
    failures = ContainerProvider().check({}, news).failures
    assert [f.property for f in failures] == ["name"]
    assert failures[0].reason.startswith("sites.a.containers[0]: container 'web1' on host h1")
    assert "docker.image.exists" not in agent.ops()  # the rest waits for known inputs


def test_check_reports_a_shim_named_like_a_link_of_the_host(agent: TypedAgent) -> None:
    agent.responses["link.exists"] = True
    agent.serve(LINK_GET, typed_host.link("vshim0", kind="veth"))
    failures = ShimProvider().check({}, _own(shim())).failures
    assert [f.reason for f in failures] == [
        "sites.a.networks[0].shim: link 'vshim0' on host h1 (203.0.113.2) exists and is not "
        "owned by vlaninfra (no vlaninfra alias); vlaninfra leaves it alone: rename yours in "
        "the config or remove it from the host (the shim's name is "
        "sites.a.networks[0].shim.name)"]
    agent.serve(LINK_GET, typed_host.link("vshim0", kind="macvlan",
                                          alias=marks.alias(OWNER, "x")))
    assert ShimProvider().check({}, _own(shim())).failures == []


def test_check_accepts_an_existing_vlan_parent_but_not_another_link(agent: TypedAgent) -> None:
    agent.responses["link.exists"] = True
    agent.serve(LINK_GET, typed_host.link("eth0.50"))
    assert VlanParentProvider().check({}, vlan()).failures == []
    agent.serve(LINK_GET, typed_host.link("eth0.50", kind="bridge", parent=None,
                                          vlan_id=None))
    failures = VlanParentProvider().check({}, vlan()).failures
    assert "exists as bridge" in failures[0].reason


def test_check_reports_a_route_another_protocol_owns(agent: TypedAgent) -> None:
    agent.serve(ROUTE_GET, typed_host.route(gateway="192.0.2.9", proto="bird"))
    failures = RouterRouteProvider().check({}, route()).failures
    assert [f.reason for f in failures] == [
        "sites.a.routers[0]: a route to 198.18.1.0/24 via 192.0.2.9 owned by protocol 'bird' "
        "exists on router gw (203.0.113.1); vlaninfra leaves it alone: remove it there, or "
        "drop 198.18.1.0/24 from the routes vlaninfra manages"]
    agent.serve(ROUTE_GET, typed_host.route())
    assert RouterRouteProvider().check({}, route()).failures == []
    # a vlaninfra route through another next hop: another stack's, or a leftover
    agent.serve(ROUTE_GET, typed_host.route(gateway="192.0.2.9"))
    (failure,) = RouterRouteProvider().check({}, route()).failures
    assert "vlaninfra route to 198.18.1.0/24 via 192.0.2.9" in failure.reason


def test_delete_and_update_claim_through_what_state_recorded(agent: TypedAgent) -> None:
    agent.serve(CONTAINER_REMOVE, Removed(True))
    ContainerProvider().delete("c", {**container(), "container_id": "c1"})
    assert agent.args(CONTAINER_REMOVE) == [ContainerRef("web1", "adhoc", "c1")]
    agent.serve(SHIM_ENSURE, typed_host.link("vshim0", kind="macvlan", index=4, mac=None))
    ShimProvider().update("s", {**shim(), "ifindex": 4}, _own(shim()))
    assert agent.args(SHIM_ENSURE)[0].ifindex == 4
    agent.serve(ROUTE_ENSURE, typed_host.route())
    RouterRouteProvider().update("r", {**route(via="192.0.2.9"), "proto": "static"}, route())
    assert agent.args(ROUTE_ENSURE)[0].legacy_via == "192.0.2.9"


def test_check_of_a_replacement_accepts_its_own_object_with_the_old_spec(
        agent: TypedAgent) -> None:
    # The engine checks a replacement with no old inputs while the old object is still there.
    agent.responses["docker.image.exists"] = True
    agent.serve(CONTAINER_INSPECT, typed_host.container(labels=_labels(OWNER, "old")))
    assert ContainerProvider().check({}, _own(container(ipv4="192.0.2.170"))).failures == []


def test_a_delete_the_host_refused_is_an_error_not_a_success(agent: TypedAgent) -> None:
    kept = "link 'shim0' is owned by stack 'infra/other': left in place"
    agent.responses["shim.delete"] = {"deleted": False, "kept": kept}
    with pytest.raises(ProviderError) as info:
        ShimProvider().delete("s1", _own(shim()))
    message = str(info.value)
    assert kept in message and repr(OWNER) in message
    assert "remove it on the host" in message and "pulumi state delete" in message
    agent.responses["shim.delete"] = {"deleted": False}  # already gone: fine
    ShimProvider().delete("s1", _own(shim()))


def test_outcome_unknown_is_said_once(agent: TypedAgent) -> None:
    from vlaninfra.transport import OutcomeUnknownError

    agent.responses["docker.container.create"] = OutcomeUnknownError.for_op(
        "root@203.0.113.2:22", "docker.container.create", "got no answer within 120s")
    with pytest.raises(ProviderError) as info:
        ContainerProvider().create(container())
    message = str(info.value)
    assert message == ("container 'web1' (sites.a.containers[0]): outcome unknown on h1 "
                       "(203.0.113.2): docker.container.create got no answer within 120s; the "
                       "next `pulumi up` (or `pulumi refresh`) reconciles it")


@pytest.mark.parametrize(("provider", "props", "op"), [
    (ContainerProvider, container, "docker.container.inspect"),
    (NetworkProvider, network, "docker.network.inspect"),
    (ShimProvider, shim, "shim.read"),
    (RouterRouteProvider, route, "route.read"),
    (VlanParentProvider, vlan, "vlan.read"),
])
def test_a_refresh_that_cannot_reach_the_host_names_the_object_and_its_key(
        agent: TypedAgent, provider: type[HostProvider], props: Any, op: str) -> None:
    """A read changes nothing: the error says which object could not be read, where in the
    config and on which host, and that nothing changed (not "outcome unknown")."""
    from vlaninfra.transport import TransportError

    agent.responses[op] = TransportError("cannot connect to root@203.0.113.2:22: timed out",
                                         host="root@203.0.113.2:22")
    p = _own(props())
    with pytest.raises(ProviderError) as info:
        provider().read("x", p)
    message = str(info.value)
    assert message.startswith(f"{provider.KIND} {p['name']!r} ({p['config_path']}) on host ")
    assert message.endswith("cannot read it, nothing was changed: cannot connect to "
                            "root@203.0.113.2:22: timed out")
